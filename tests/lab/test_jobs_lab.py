"""Scheduled jobs on the reference lab: the scheduler agents run with their hosts' jobs, a
`singleton: cluster` job on app1 and app2 runs exactly once per tick (PostgreSQL advisory
lock on the operational cluster), and `opsctl jobs run|history` work over SSH."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import defaultdict

import pytest

from opsctl.lab import lifecycle

# Cron ticks are waited for in real time: the province converges meanwhile (conftest.py).
pytestmark = pytest.mark.clock_bound

JOBS = "/etc/opsctl-scheduler/jobs.json"


def remote(site, host: str, argv: list[str], timeout: float = 60) -> str:
    code, out = lifecycle.ssh.remote(site, host, argv, timeout=timeout)
    assert code == 0, f"{host}: {' '.join(argv)}: {out}"
    return out


def opsctl(site, *args: str, timeout: float = 300) -> tuple[int, object]:
    done = subprocess.run([sys.executable, "-m", "opsctl", *args, "--site",
                           str(site.directory), "-o", "json"], capture_output=True, text=True,
                          timeout=timeout, check=False)
    return done.returncode, json.loads(done.stdout or "null")


def test_every_host_runs_the_scheduler_with_its_own_jobs(reference):
    site, _ = reference
    for host in sorted(site.hosts):
        assert remote(site, host, ["systemctl", "is-active", "opsctl-scheduler"]).strip() \
            == "active", host
        jobs = json.loads(remote(site, host, ["cat", JOBS]))
        expected = {j.name for j in site.jobs if host in j.hosts}
        assert {j["name"] for j in jobs["jobs"]} == expected, host
    # backups run as pgBackRest's account, so the agent on bak1 may switch users; the
    # lock's password is in a 0600 libpq passfile, never in the jobs file
    app1 = json.loads(remote(site, "app1", ["cat", JOBS]))
    assert "password" not in json.dumps(app1) and "passfile=" in app1["cluster_lock"]["dsn"]
    mode = remote(site, "app1", ["stat", "-c", "%a", "/etc/opsctl-scheduler/pgpass"]).strip()
    assert mode == "600"


def test_opsctl_jobs_run_and_history_over_ssh(reference):
    site, _ = reference
    # a real incremental backup on bak1, started by its scheduler as the pgbackrest account
    code, answers = opsctl(site, "jobs", "run", "backup-incr", timeout=900)
    assert code == 0, answers
    [answer] = answers
    assert answer["host"] == "bak1" and answer["ok"], answer
    assert answer["data"]["outcome"] == "success", answer["data"]["output_tail"]
    code, history = opsctl(site, "jobs", "history", "backup-incr")
    assert code == 0, history
    runs = history[0]["data"]
    assert runs[0]["job"] == "backup-incr" and runs[0]["outcome"] == "success"
    assert runs[0]["ended"] >= runs[0]["started"]
    # without a name: every host that runs a job answers
    code, everything = opsctl(site, "jobs", "history")
    assert code == 0 and {a["host"] for a in everything} == set(site.hosts)
    # a job that does not exist is one line and exit 2
    done = subprocess.run([sys.executable, "-m", "opsctl", "jobs", "run", "no-such-job",
                           "--site", str(site.directory)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2 and "no-such-job" in done.stderr
    assert "Traceback" not in done.stderr


LAB_JOB = {"name": "lab-singleton", "group": "app", "schedule": "* * * * *",
           "command": ["sleep", "2"], "timeout": 50, "singleton": "cluster"}

ADD_JOB = """
import json, shutil, sys
path = sys.argv[1]
shutil.copy(path, path + ".lab-test")
data = json.load(open(path))
data["jobs"].append(json.loads(sys.argv[2]))
json.dump(data, open(path, "w"))
"""


def test_log_cleanup_succeeds_on_every_host(reference):
    site, _ = reference
    code, answers = opsctl(site, "jobs", "run", "log-cleanup", timeout=300)
    assert code == 0, answers
    assert sorted(a["host"] for a in answers) == sorted(site.hosts)
    for answer in answers:
        assert answer["ok"] and answer["data"]["outcome"] == "success", answer


def test_a_cluster_singleton_runs_exactly_once_per_tick_on_app1_and_app2(reference):
    site, _ = reference
    hosts = ["app1", "app2"]
    try:
        for host in hosts:
            remote(site, host, ["python3", "-c", ADD_JOB, JOBS, json.dumps(LAB_JOB)])
            remote(site, host, ["systemctl", "restart", "opsctl-scheduler"])

        def ticks() -> dict[float, list[tuple[str, str]]]:
            seen: dict[float, list[tuple[str, str]]] = defaultdict(list)
            for host in hosts:
                out = remote(site, host, ["env", "PYTHONPATH=/opt/opsctl-scheduler", "python3",
                                          "-m", "scheduler", "history", "lab-singleton",
                                          "--json", "--limit", "50"])
                for run in json.loads(out):
                    if run["outcome"] != "running":
                        seen[run["tick"]].append((host, run["outcome"]))
            return seen

        deadline = time.monotonic() + 200
        while time.monotonic() < deadline:
            complete = {t: r for t, r in ticks().items() if len(r) == 2}
            if len(complete) >= 2:
                break
            time.sleep(10)
        assert len(complete) >= 2, f"fewer than two ticks seen on both hosts: {dict(ticks())}"
        for tick, runs in complete.items():
            outcomes = sorted(outcome for _, outcome in runs)
            assert outcomes == ["skipped", "success"], (tick, runs)
    finally:
        for host in hosts:
            lifecycle.ssh.remote(site, host, [
                "sh", "-c", f"mv {JOBS}.lab-test {JOBS} && systemctl restart opsctl-scheduler"])


def test_the_hosts_own_compliance_scan_agrees_with_opsctl_check(reference):
    """compliance-scan on db1 (scheduler, as root, from the installed archive) finds the same
    failing checks as `opsctl check --site` from the control node (the monitor's side of the
    file: test_monitoring_lab, whose rule metrics include the scan's)."""
    site, _ = reference
    code, answers = opsctl(site, "jobs", "run", "compliance-scan", "--host", "db1", timeout=900)
    assert code == 0, answers
    [answer] = answers
    assert answer["data"]["outcome"] == "success", answer["data"]["output_tail"]
    summary = json.loads(remote(site, "db1", ["cat", "/var/lib/opsctl-monitor/compliance.json"]))
    assert summary["host"] == "db1" and summary["error"] is None
    # the admin's password was set by the converge today and ages 90 days: the monitor's
    # OpsctlPasswordExpiring alert reads this (opsctl site password rotate resets it)
    left = summary["password_expiry"]["ops"] - time.time()
    assert 88 * 86400 < left <= 90 * 86400, left
    done = subprocess.run([sys.executable, "-m", "opsctl", "check", "--site",
                           str(site.directory), "--limit", "db1", "--format", "json"],
                          capture_output=True, text=True, timeout=900, check=False)
    [fleet] = [t for t in json.loads(done.stdout)["targets"] if t["name"] == "db1"]
    assert sorted(c["id"] for c in fleet["checks"] if c["status"] == "fail") == summary["failed"]
    assert fleet["counts"] == summary["counts"]
