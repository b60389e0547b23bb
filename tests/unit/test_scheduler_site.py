"""Jobs in the site: validation (one-line errors with file and key), `opsctl jobs list`, and
`jobs run|history` over a fake transport (the lab's SSH is not used here)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from opsctl.cli.main import main
from opsctl.jobs.catalog import list_jobs
from opsctl.jobs.fleet import REMOTE_SCHEDULER, job_history, run_job
from opsctl.site import load_site
from opsctl.transport import BecomeRefused, HostUnreachable, Result
from scheduler.spec import parse_jobs_file


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def edit(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


def site_yml(site: Path) -> Path:
    return site / "group_vars" / "all" / "site.yml"


def assert_one_line_errors(err: str, *expected: str) -> list[str]:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and lines
    for line in lines:
        assert re.match(r"^opsctl: \S+\.yml: \S.*: \S", line), line
    for fragment in expected:
        assert any(fragment in line for line in lines), (fragment, lines)
    return lines


NOW = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai


def test_reference_jobs():
    site = load_site("reference")
    jobs = {j.name: j for j in site.jobs}
    assert set(jobs) == {"backup-full", "backup-diff", "backup-incr", "compliance-scan",
                         "extract-desensitised", "log-cleanup"}
    assert jobs["backup-full"].hosts == ("bak1",)
    assert jobs["backup-full"].spec.command == ("pgbackrest", "--stanza=main", "--type=full",
                                                "backup")
    assert jobs["backup-full"].spec.timeout == 6 * 3600
    # every database host: the leader moves under Patroni, a standby skips
    assert jobs["extract-desensitised"].hosts == ("db1", "db2")
    assert jobs["extract-desensitised"].spec.user == "postgres"
    assert jobs["compliance-scan"].spec.action == "compliance-scan"
    assert len(jobs["log-cleanup"].hosts) == 7


def test_list_jobs_next_fire_in_the_jobs_zone():
    rows = {r.name: r for r in list_jobs(load_site("reference"), NOW)}
    assert rows["backup-full"].next_fire == "2026-06-07T01:00:00+08:00"  # the Sunday after
    assert rows["backup-diff"].next_fire == "2026-06-02T01:00:00+08:00"
    assert rows["backup-incr"].next_fire == "2026-06-01T08:30:00+08:00"
    assert rows["extract-desensitised"].next_fire == "2026-06-02T02:30:00+08:00"


def test_jobs_list_json(capsys):
    code, out, _ = run(capsys, "jobs", "list", "--site", "reference", "-o", "json")
    assert code == 0
    data = json.loads(out)
    assert [d["name"] for d in data][:3] == ["backup-full", "backup-diff", "backup-incr"]
    assert data[0]["hosts"] == ["bak1"] and data[0]["timezone"] == "Asia/Shanghai"
    datetime.fromisoformat(data[0]["next_fire"])


def test_site_jobs_make_a_valid_host_jobs_file():
    """What the scheduler_agent role will write for a host loads on the host's side."""
    site = load_site("reference")
    db1 = [j.spec.as_dict() for j in site.jobs if "db1" in j.hosts]
    jobs = parse_jobs_file({"jobs": db1, "cluster_lock": {"dsn": "dbname=operational"}},
                           "jobs.json")
    assert [j.name for j in jobs.jobs] == ["compliance-scan", "extract-desensitised",
                                           "log-cleanup"]


def test_job_on_unknown_group(capsys, site_copy):
    edit(site_yml(site_copy), lambda d: d["site"]["jobs"][0].update({"group": "tape"}))
    code, _, err = run(capsys, "site", "validate", str(site_copy))
    assert code == 2
    lines = assert_one_line_errors(err, "site.yml: site.jobs[0].group: unknown group 'tape'")
    assert len(lines) == 1


def test_job_with_bad_cron(capsys, site_copy):
    edit(site_yml(site_copy), lambda d: d["site"]["jobs"][1].update({"schedule": "0 25 * * *"}))
    code, _, err = run(capsys, "site", "validate", str(site_copy))
    assert code == 2
    lines = assert_one_line_errors(
        err, "site.yml: site.jobs[1].schedule: Value error, not a cron expression: "
             "hour: 25 is outside 0-23")
    assert len(lines) == 1


@pytest.mark.parametrize("change, fragment", [
    ({"action": "reboot-everything", "command": None}, "site.jobs[3].action: Value error, "
                                                        "unknown action"),
    ({"concurrency": "queue"}, "site.jobs[3].concurrency: Input should be"),
    ({"timeout": "forever"}, "site.jobs[3].timeout"),
    ({"command": ["true"]}, "site.jobs[3]: Value error, give exactly one of command"),
    ({"timezone": "Asia/Beijing"}, "site.jobs[3].timezone: Value error, unknown time zone"),
    # what the site's fields let through, the host's own check refuses: site validation says so
    ({"timeout": 0}, "site.jobs[3]: Value error, timeout: must be more than 0"),
])
def test_other_bad_jobs(capsys, site_copy, change, fragment):
    def apply(d):
        job = d["site"]["jobs"][3]  # compliance-scan, an action
        job.update(change)
        for key in [k for k, v in change.items() if v is None]:
            del job[key]

    edit(site_yml(site_copy), apply)
    code, _, err = run(capsys, "site", "validate", str(site_copy))
    assert code == 2
    assert_one_line_errors(err, fragment)


def test_the_site_job_is_the_scheduler_job_with_a_group() -> None:
    """One definition of a job (scheduler/spec.py, shipped to the hosts); the site's pydantic
    model repeats its keys and defaults only so that site.yml's errors read like the rest."""
    import dataclasses

    from opsctl.site.schema import BackoffSpec, JobSpec
    from scheduler import spec as sched

    assert set(JobSpec.model_fields) == sched.JOB_KEYS
    for f in dataclasses.fields(sched.JobSpec):
        if f.name in ("name", "schedule", "group", "backoff"):
            continue  # required in both (group: required in the site), or a mapping below
        assert JobSpec.model_fields[f.name].default == f.default, f.name
    assert BackoffSpec().base == sched.Backoff.base and BackoffSpec().max == sched.Backoff.max
    raw = {"name": "nightly", "group": "db", "command": ["true"], "schedule": "0 1 * * *",
           "timeout": "4h", "backoff": {"base": "1m"}, "user": "postgres"}
    problems: list[str] = []
    assert JobSpec.model_validate(raw).to_scheduler() == sched.parse_job(raw, "job", problems)
    assert problems == []


def test_duplicate_job_name(capsys, site_copy):
    edit(site_yml(site_copy), lambda d: d["site"]["jobs"][1].update({"name": "backup-full"}))
    code, _, err = run(capsys, "site", "validate", str(site_copy))
    assert code == 2
    assert_one_line_errors(err, "site.jobs[1].name: duplicate job name 'backup-full'")


class FakeHosts:
    """A transport whose hosts answer (exit code, output), or raise what it holds."""

    def __init__(self, answers):
        self.answers = answers
        self.calls: list[tuple[str, list[str]]] = []

    def run(self, host, argv, stdin=None, *, timeout):
        self.calls.append((host, argv))
        answer = self.answers[host]
        if isinstance(answer, Exception):
            raise answer
        return Result(answer[0], answer[1], "")


def test_run_job_on_the_groups_hosts():
    fake = FakeHosts({"db1": (0, json.dumps({"job": "extract-desensitised",
                                             "outcome": "success"}))})
    answer = run_job(load_site("reference"), "extract-desensitised", fake, hosts=["db1"])
    assert answer.ok
    assert fake.calls == [("db1", [*REMOTE_SCHEDULER, "run",
                                   "extract-desensitised"])]


def test_run_job_reports_failures_and_unreachable_hosts():
    fake = FakeHosts({h: (1, json.dumps({"outcome": "failed", "reason": "exit code 1"}))
                      for h in ("mon1", "lb1", "app1", "app2", "db1", "db2")})
    fake.answers["bak1"] = HostUnreachable("bak1: unreachable over SSH via ssh (No route to host)")
    fake.answers["db2"] = BecomeRefused("db2: sudo refused ops (3 incorrect password attempts)")
    # a remote 255 is the job's own exit code, not an unreachable host
    fake.answers["app1"] = (255, json.dumps({"outcome": "failed", "reason": "exit code 255"}))
    answer = run_job(load_site("reference"), "log-cleanup", fake)
    assert not answer.ok
    by_host = {a.host: a for a in answer.answers}
    assert by_host["bak1"].error == "bak1: unreachable over SSH via ssh (No route to host)"
    assert by_host["db2"].error.startswith("db2: sudo refused ops")
    assert by_host["app1"].error == "" and by_host["app1"].data["reason"] == "exit code 255"


def test_history_asks_every_host_with_jobs():
    fake = FakeHosts({h: (0, "[]") for h in ("mon1", "lb1", "app1", "app2", "db1", "db2",
                                              "bak1")})
    answer = job_history(load_site("reference"), None, fake, limit=5)
    assert answer.ok and len(answer.answers) == 7
    assert fake.calls[0][1] == [*REMOTE_SCHEDULER, "history", "--json",
                                "--limit", "5"]


def test_unknown_job_is_a_clear_error(capsys):
    code, _, err = run(capsys, "jobs", "run", "nope", "--site", "reference")
    assert code == 2
    assert "no job 'nope' in site reference" in err


def test_a_province_copy_keeps_the_jobs_on_its_own_hosts(tmp_path):
    from opsctl.site.new import new_site

    made = new_site("gansu", cidr_base="172.31.200.0/22", inventory_root=tmp_path)
    jobs = {j.name: j for j in load_site(made.directory).jobs}
    assert jobs["backup-full"].hosts == ("gansu-bak1",)
    assert jobs["extract-desensitised"].hosts == ("gansu-db1", "gansu-db2")
