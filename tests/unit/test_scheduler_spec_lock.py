"""Jobs files: validation with `FILE: KEY: reason`; the cluster lock: fake, and — only where
Debian's PostgreSQL server binaries are installed — a throwaway local cluster on a unix socket."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from scheduler.lock import FakeLock, PsqlLock, Psycopg2Lock, make_lock
from scheduler.spec import SpecError, load_jobs_file, parse_duration, parse_jobs_file

GOOD = {
    "name": "backup-full", "group": "backup", "schedule": "0 1 * * *",
    "command": ["pgbackrest", "--stanza=main", "--type=full", "backup"],
    "timeout": "4h", "retries": 2, "backoff": {"base": "1m", "max": "10m"}, "jitter": 30,
    "concurrency": "forbid", "missed": "run-once",
}


def test_a_good_file(tmp_path):
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps({
        "jobs": [GOOD, {"name": "extract", "action": "extract-desensitised",
                        "schedule": "30 2 * * *", "singleton": "cluster"}],
        "actions": {"extract-desensitised": ["/usr/local/bin/extract"]},
        "cluster_lock": {"dsn": "host=/run/postgresql dbname=operational"}}))
    jobs = load_jobs_file(path)
    full = jobs.job("backup-full")
    assert full.timeout == 4 * 3600 and full.backoff.base == 60 and full.backoff.max == 600
    assert full.timezone == "Asia/Shanghai" and full.missed == "run-once"
    assert jobs.argv(jobs.job("extract")) == ("/usr/local/bin/extract",)
    assert jobs.lock_dsn.startswith("host=")
    # as_dict round-trips (the site writes jobs files with it)
    again = parse_jobs_file({"jobs": [j.as_dict() for j in jobs.jobs],
                             "cluster_lock": {"dsn": "x"}}, "f")
    assert again.jobs == jobs.jobs


@pytest.mark.parametrize("change, key, reason", [
    ({"schedule": "61 * * * *"}, "jobs[0].schedule", "minute: 61 is outside 0-59"),
    ({"action": "compliance-scan"}, "jobs[0].command", "exactly one of command"),
    ({"command": "pgbackrest backup"}, "jobs[0].command", "list of strings"),
    ({"timezone": "Mars/Olympus"}, "jobs[0].timezone", "unknown time zone"),
    ({"timeout": "soon"}, "jobs[0].timeout", "not a duration"),
    ({"retries": -1}, "jobs[0].retries", "0-20"),
    ({"backoff": {"base": 60, "max": 10}}, "jobs[0].backoff.max", "less than base"),
    ({"concurrency": "queue"}, "jobs[0].concurrency", "forbid, replace, allow"),
    ({"missed": "all"}, "jobs[0].missed", "skip, run-once"),
    ({"singleton": "host"}, "jobs[0].singleton", "cluster"),
    ({"colour": "red"}, "jobs[0].colour", "unknown key"),
    ({"name": "Bad Name"}, "jobs[0].name", "lower-case"),
])
def test_problems_name_file_and_key(change, key, reason):
    with pytest.raises(SpecError) as exc:
        parse_jobs_file({"jobs": [{**GOOD, **change}]}, "jobs.json")
    assert any(p.startswith(f"jobs.json: {key}: ") and reason in p
               for p in exc.value.problems), exc.value.problems


def test_every_problem_at_once_and_file_level_checks():
    with pytest.raises(SpecError) as exc:
        parse_jobs_file({"jobs": [GOOD, GOOD, {**GOOD, "name": "x", "singleton": "cluster",
                                                 "retries": "many"}],
                         "actions": {"rm-rf": ["rm"]}, "extra": 1}, "jobs.json")
    problems = exc.value.problems
    assert "jobs.json: extra: unknown key" in problems[0]
    assert any("jobs[1].name: duplicate job name" in p for p in problems)
    assert any("jobs[2].retries" in p for p in problems)
    assert any("actions.rm-rf: unknown action" in p for p in problems)


def test_singleton_needs_a_lock_dsn():
    with pytest.raises(SpecError, match="cluster_lock: a singleton"):
        parse_jobs_file({"jobs": [{**GOOD, "singleton": "cluster"}]}, "jobs.json")


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(SpecError, match="cannot read"):
        load_jobs_file(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{jobs: [")
    with pytest.raises(SpecError, match=r"bad.json: line 1: not JSON"):
        load_jobs_file(bad)


@pytest.mark.parametrize("value, seconds", [(90, 90), ("90", 90), ("90s", 90), ("5m", 300),
                                            ("1.5h", 5400), ("1d", 86400)])
def test_durations(value, seconds):
    assert parse_duration(value) == seconds


def test_fake_lock_is_exclusive_until_released():
    lock = FakeLock()
    first = lock.acquire("extract")
    assert first is not None and lock.acquire("extract") is None
    assert lock.acquire("other") is not None
    first.release()
    assert lock.acquire("extract") is not None


def _pg_bin() -> Path | None:
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(f"{d}/initdb") and os.path.exists(f"{d}/postgres"):
            return Path(d)
    return None


@pytest.fixture
def local_postgres():
    """A throwaway cluster in a temp dir, on a unix socket only, stopped by its PID."""
    bindir = _pg_bin()
    if bindir is None or shutil.which("psql") is None:
        pytest.skip("PostgreSQL server binaries (Debian's postgresql-15) are not installed")
    base = Path(tempfile.mkdtemp(prefix="opsctl-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the server as the postgres user
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres")
    data, sock = base / "data", base
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust",
                    "-U", "postgres"], check=True, capture_output=True)
    server = subprocess.Popen([*as_user, str(bindir / "postgres"), "-D", str(data),
                               "-k", str(sock), "-c", "listen_addresses=", "-p", "54329"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (sock / ".s.PGSQL.54329").exists():
            if time.monotonic() > deadline or server.poll() is not None:
                pytest.skip("the throwaway PostgreSQL did not start")
            time.sleep(0.1)
        time.sleep(0.3)
        yield f"host={sock} port=54329 dbname=postgres user=postgres"
    finally:
        server.terminate()  # runuser forwards SIGTERM: smart shutdown of this server only
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(base, ignore_errors=True)


def test_psql_advisory_lock_on_a_local_cluster(local_postgres):
    lock = PsqlLock(local_postgres)
    first = lock.acquire("extract-desensitised")
    assert first is not None
    assert lock.acquire("extract-desensitised") is None  # another session: refused
    assert lock.acquire("backup-full") is not None
    first.release()
    again = lock.acquire("extract-desensitised")
    assert again is not None
    again.release()
    assert isinstance(make_lock(local_postgres), PsqlLock | Psycopg2Lock)


def test_psql_lock_unreachable_database_is_an_oserror(tmp_path):
    if shutil.which("psql") is None:
        pytest.skip("psql is not installed")
    with pytest.raises(OSError):
        PsqlLock(f"host={tmp_path} port=1 dbname=x", timeout=3).acquire("x")


def test_scheduler_needs_only_the_standard_library():
    """Hosts have no pydantic, no PyYAML and no opsctl: import every module without
    site-packages (-S) and check nothing outside the stdlib came along."""
    import sys

    root = Path(__file__).resolve().parents[2]
    code = (f"import sys; sys.path.insert(0, {str(root)!r}); "
            "import scheduler.__main__, scheduler.agent, scheduler.cron, scheduler.engine, "
            "scheduler.history, scheduler.lock, scheduler.metrics, scheduler.runner, "
            "scheduler.spec; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('opsctl', 'pydantic', 'yaml', 'psutil', 'prometheus_client', 'monitor')); "
            "print(bad)")
    done = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
