"""`opsctl aide report` and `opsctl aide accept` without hosts: a fake transport plays each
host's AIDE (its files' times, the recorded daily logs, a recorded `aide --update` report),
and the tests read what ran, in which order, what the audit record keeps and the exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from opsctl import audit
from opsctl.aide import accept as acc
from opsctl.aide.report import AIDE, BASELINE, LOG, judge, read_host, report
from opsctl.cli.main import cli
from opsctl.errors import InvalidInput
from opsctl.site import load_site
from opsctl.transport import HostUnreachable, Result

FACTS = Path(__file__).parent / "facts" / "aide"
CHANGED, UNCHANGED = (FACTS / "changed.log").read_text(), (FACTS / "unchanged.log").read_text()
UPDATE = (FACTS / "update.out").read_text()
NEW = acc.NEW_BASELINE


class FakeHost:
    """One host's AIDE: the files' times, the daily log, what `aide --update` answers and
    what the next daily check writes."""

    def __init__(self, log: str | None = CHANGED, update: Result | None = None,
                 next_log: str = UNCHANGED, aide: bool = True) -> None:
        self.times = {BASELINE: 1_765_000_000.0}
        if aide:
            self.times[AIDE] = 1_760_000_000.0
        if log is not None:
            self.times[LOG] = 1_765_090_000.0
        self.log, self.next_log = log, next_log
        self.update = update or Result(7, UPDATE, "")
        self.clock = 1_765_100_000.0

    def tick(self) -> float:
        self.clock += 10
        return self.clock

    def run(self, argv: list[str]) -> Result:
        if argv[0] == "stat":
            found = [f"{self.times[p]:.0f} {p}" for p in argv[3:] if p in self.times]
            return Result(0 if len(found) == len(argv[3:]) else 1, "\n".join(found) + "\n",
                          "stat: cannot statx: No such file or directory")
        if argv[0] == "cat":
            return Result(0, self.log or "", "")
        if argv[:3] == ["timeout", str(acc.SCAN_SECONDS), "aide"]:
            if self.update.rc <= 7:
                self.times[NEW] = self.tick()
            return self.update
        if argv[0] == "sha256sum":
            sums = {BASELINE: "a" * 64, NEW: "b" * 64}
            return Result(0, "".join(f"{sums[p]}  {p}\n" for p in argv[2:] if p in self.times), "")
        if argv[0] == "mv":
            self.times[BASELINE] = self.times.pop(NEW)
            return Result(0, "", "")
        if argv[:3] == ["systemctl", "start", acc.DAILY_CHECK]:
            self.log, self.times[LOG] = self.next_log, self.tick()
            return Result(0, "", "")
        return Result(0, "", "")


class FakeTransport:
    def __init__(self, hosts: dict[str, FakeHost], down: set[str] = frozenset()) -> None:
        self.hosts, self.down, self.calls = hosts, down, []

    def run(self, host, argv, stdin=None, *, timeout):
        self.calls.append((host, argv))
        if host in self.down:
            raise HostUnreachable(f"{host}: unreachable over SSH via mon1 (No route to host)")
        return self.hosts.get(host, FakeHost()).run(argv)

    def ran(self, host: str) -> list[list[str]]:
        return [argv for h, argv in self.calls if h == host]


@pytest.fixture
def site():
    return load_site("reference")


# --- report ---------------------------------------------------------------------------------

def test_judge_reads_the_daily_checks_outcome_and_entries():
    times = {BASELINE: 1.0, LOG: 2.0, AIDE: 0.0}
    found = judge("app1", times, CHANGED)
    assert found.state == "entries" and not found.ok and found.exit_code == 5
    assert found.counts == {"added": 1, "removed": 0, "changed": 2}
    assert [(e.change, e.path) for e in found.entries][0] == (
        "added", "/usr/local/sbin/opsctl-aide-probe")
    assert found.checked == 2.0 and found.baseline == 1.0
    assert found.started == "2026-12-06 01:52:13 +0000"
    clean = judge("db1", times, UNCHANGED)
    assert clean.state == "clean" and clean.ok and clean.entries == []


@pytest.mark.parametrize(("log", "times", "state", "reason"), [
    ("error.log", {LOG, BASELINE, AIDE}, "failed", "AIDE exited 17: /etc/aide/aide.conf:42"),
    ("interrupted.log", {LOG, BASELINE, AIDE}, "failed", "stopped before AIDE returned"),
    (None, {BASELINE, AIDE}, "no check", "no daily check yet"),
    (None, {AIDE}, "no check", "no baseline"),
    (None, set(), "no aide", "AIDE is not installed"),
])
def test_judge_says_why_a_host_has_no_clean_check(log, times, state, reason):
    text = (FACTS / log).read_text() if log else None
    found = judge("h", dict.fromkeys(times, 1.0), text)
    assert found.state == state and reason in found.reason
    assert found.ok == (state in ("no check", "no aide"))


def test_a_report_cut_short_says_how_many_entries_it_does_not_list():
    text = "AIDE returned with exit code 4. Changed entries detected!\n  Changed entries:\t\t9\n"
    found = judge("h", {LOG: 1.0, BASELINE: 1.0, AIDE: 1.0}, text)
    assert found.state == "entries" and found.unlisted == 9


def test_the_report_reads_the_log_as_root_and_goes_on_past_an_unreachable_host(site):
    fake = FakeTransport({"app1": FakeHost(CHANGED), "db1": FakeHost(None)}, down={"app2"})
    found = report(site, ("app", "db1"), fake)
    by = {h.host: h for h in found.hosts}
    assert list(by) == ["app1", "app2", "db1"]
    assert by["app1"].state == "entries"
    assert by["app2"].state == "unreachable" and "No route to host" in by["app2"].reason
    assert by["db1"].state == "no check"
    assert not found.ok
    assert fake.ran("app1") == [["stat", "--format=%Y %n", "--", BASELINE, LOG, AIDE],
                                ["cat", "--", LOG]]
    assert ["cat", "--", LOG] not in fake.ran("db1")  # no log: nothing to read
    data = json.loads(json.dumps(found.as_dict()))
    assert data["hosts"][0]["entries"][0] == {
        "path": "/usr/local/sbin/opsctl-aide-probe", "change": "added",
        "summary": "f++++++++++++++++"}
    assert data["hosts"][0]["checked"] == "2025-12-07T06:46:40+00:00"


def test_an_unknown_limit_is_refused_before_any_host_is_asked(site):
    fake = FakeTransport({})
    with pytest.raises(InvalidInput, match="nosuch: no such host in site reference"):
        report(site, ("nosuch",), fake)
    assert fake.calls == []


def test_a_log_root_cannot_read_is_a_failed_host():
    class Unreadable(FakeHost):
        def run(self, argv):
            if argv[0] == "cat":
                return Result(1, "", "cat: /var/log/aide/aide.log: Permission denied")
            return super().run(argv)

    found = read_host(FakeTransport({"app1": Unreadable()}), "app1")
    assert found.state == "failed" and "Permission denied" in found.reason


# --- accept ---------------------------------------------------------------------------------

def test_accept_updates_installs_checks_again_in_that_order(site, state_dir):
    fake = FakeTransport({"app1": FakeHost()})
    done = acc.accept(site, ["app1"], "nginx certificate rotated (pki rotate run 42)", fake)
    assert done.ok
    assert fake.ran("app1") == [
        ["timeout", str(acc.SCAN_SECONDS), "aide", "--config", "/etc/aide/aide.conf",
         "--update"],
        ["sha256sum", "--", BASELINE, NEW],
        ["chown", f"--reference={BASELINE}", "--", NEW],
        ["chmod", f"--reference={BASELINE}", "--", NEW],
        ["mv", "-f", "--", NEW, BASELINE],
        ["systemctl", "reset-failed", "dailyaidecheck.service", "opsctl-aide-status.service"],
        ["systemctl", "start", "dailyaidecheck.service"],
        ["systemctl", "start", "opsctl-aide-status.service"],
        ["stat", "--format=%Y %n", "--", BASELINE, LOG, AIDE],
        ["cat", "--", LOG],
    ]
    [result] = done.hosts
    assert result.check is not None and result.check.state == "clean"


def test_the_audit_record_keeps_the_reason_and_exactly_what_the_update_accepted(site, state_dir):
    # The daily log still shows the older finding (1 added, 2 changed); the update found more
    # since: the record holds the update's own entries, not the log's.
    fake = FakeTransport({"app1": FakeHost(CHANGED)})
    done = acc.accept(site, ["app1"], "  nginx certificate rotated  ", fake)
    [record] = [r for r in audit.records() if r["action"] == "aide-accept"]
    args = record["args"]
    assert args["host"] == "app1" and args["site"] == "reference"
    assert args["reason"] == "nginx certificate rotated"
    assert args["update_exit_code"] == 7
    assert args["accepted"] == {"added": 2, "removed": 1, "changed": 2}
    assert [(e["change"], e["path"]) for e in args["entries"]] == [
        ("added", "/etc/nginx/tls/lb1.crt.1"), ("added", "/usr/lib/opsctl/current"),
        ("removed", "/usr/local/sbin/opsctl-aide-probe"),
        ("changed", "/etc/ssh/sshd_config"), ("changed", "/usr/local/sbin")]
    assert args["baseline_sha256"] == {"previous": "a" * 64, "new": "b" * 64}
    assert args["installed"] is True
    assert args["check"] == {"state": "clean", "exit_code": 0, "added": 0, "removed": 0,
                             "changed": 0}
    assert record["result"].startswith("ok: accepted 2 added, 1 removed, 2 changed")
    assert done.hosts[0].audit_seq == record["seq"]
    assert audit.verify().ok


@pytest.mark.parametrize(("hosts", "reason", "match"), [
    (["app1"], "", "--reason: say why"),
    (["app1"], "   ", "--reason: say why"),
    (["app1", "nosuch"], "patch", "HOST: nosuch: no such host in site reference"),
    ([], "patch", "name the reviewed hosts"),
])
def test_bad_input_is_refused_before_any_host_is_reached(site, state_dir, hosts, reason, match):
    fake = FakeTransport({})
    with pytest.raises(InvalidInput, match=match) as caught:
        acc.accept(site, hosts, reason, fake)
    assert caught.value.exit_code == 2
    assert fake.calls == [] and audit.records() == []


def test_a_failing_host_leaves_the_next_one_done(site, state_dir):
    fake = FakeTransport({
        "app1": FakeHost(update=Result(17, "", "/etc/aide/aide.conf:42: unknown expression")),
        "app2": FakeHost()}, down={"db1"})
    done = acc.accept(site, ["app1", "db1", "app2"], "patch run 20261206", fake)
    assert not done.ok
    app1, db1, app2 = done.hosts
    assert not app1.ok and not app1.installed and "exited 17" in app1.error
    assert "unknown expression" in app1.error
    assert [a[0] for a in fake.ran("app1")] == ["timeout"]  # nothing installed, no check
    assert not db1.ok and "No route to host" in db1.error
    assert app2.ok
    records = [r for r in audit.records() if r["action"] == "aide-accept"]
    assert [(r["args"]["host"], r["result"].split(":")[0]) for r in records] == [
        ("app1", "failed, nothing installed"), ("db1", "failed, nothing installed"),
        ("app2", "ok")]


def test_an_update_whose_report_does_not_list_what_it_counted_installs_nothing(site, state_dir):
    quiet = Result(5, "AIDE found differences between database and filesystem!!\n", "")
    fake = FakeTransport({"app1": FakeHost(update=quiet)})
    [result] = acc.accept(site, ["app1"], "deploy", fake).hosts
    assert not result.ok and not result.installed
    assert "counted 1 added, 0 removed, 1 changed but listed 0 added" in result.error
    assert not any(a[0] == "mv" for a in fake.ran("app1"))


def test_a_scan_out_of_time_installs_nothing(site, state_dir):
    fake = FakeTransport({"app1": FakeHost(update=Result(124, "", ""))})
    [result] = acc.accept(site, ["app1"], "deploy", fake).hosts
    assert "exited 124 (the scan ran out of time)" in result.error and not result.installed


def test_a_check_that_still_finds_entries_after_the_install_fails_the_host(site, state_dir):
    fake = FakeTransport({"app1": FakeHost(next_log=CHANGED)})
    [result] = acc.accept(site, ["app1"], "deploy", fake).hosts
    assert result.installed and not result.ok
    assert "the daily check after the install is entries (1 added, 0 removed, 2 changed)" \
        in result.error
    [record] = audit.records()
    assert record["result"].startswith("failed after the new baseline was installed")
    assert record["args"]["entries"]  # what was accepted is on the record all the same


def test_a_daily_check_that_wrote_no_new_log_fails_the_host():
    from opsctl.aide.report import HostReport

    stale = HostReport("app1", "clean", checked=100.0, baseline=200.0)
    assert "did not write a new log" in acc.judge_check(stale)
    assert acc.judge_check(HostReport("app1", "clean", checked=300.0, baseline=200.0)) == ""


# --- the CLI --------------------------------------------------------------------------------

@pytest.fixture
def cli_fake(monkeypatch):
    """`opsctl aide` with the fake transport in place of the site's."""
    fake = FakeTransport({"app1": FakeHost(CHANGED), "app2": FakeHost(UNCHANGED),
                          "db1": FakeHost(UNCHANGED)})
    monkeypatch.setattr("opsctl.aide.report.for_site", lambda _site: fake)
    monkeypatch.setattr("opsctl.aide.accept.for_site", lambda _site: fake)
    return fake


def invoke(args: list[str]):
    return CliRunner().invoke(cli, [*args, "--site", "reference"])


def test_report_shows_each_entry_and_exits_1_on_findings(cli_fake, state_dir):
    out = invoke(["aide", "report", "--limit", "app1,app2"])
    assert out.exit_code == 1, out.output
    assert "entries" in out.output and "clean" in out.output
    assert "added    f++++++++++++++++: /usr/local/sbin/opsctl-aide-probe" in out.output
    assert "opsctl aide accept app1 --reason TEXT" in out.output
    data = json.loads(invoke(["aide", "report", "-l", "app1", "-o", "json"]).output)
    assert data["ok"] is False and data["hosts"][0]["added"] == 1


def test_report_exits_0_when_every_host_is_clean(cli_fake, state_dir):
    out = invoke(["aide", "report", "--limit", "app2", "--limit", "db1"])
    assert out.exit_code == 0, out.output
    assert "opsctl aide accept" not in out.output


def test_accept_without_a_reason_is_exit_2(cli_fake, state_dir):
    out = invoke(["aide", "accept", "app1"])
    assert out.exit_code == 2 and "--reason" in out.output
    assert cli_fake.calls == []


def test_accept_prints_each_hosts_counts_and_check(cli_fake, state_dir):
    cli_fake.hosts["app2"] = FakeHost(update=Result(18, "", "cannot open database"))
    out = invoke(["aide", "accept", "app1", "app2", "--reason", "deploy of parcel 2.4.1"])
    assert out.exit_code == 1, out.output
    assert "ok app1: accepted 2 added, 1 removed, 2 changed; the new daily check is clean" \
        in out.output
    assert "failed app2: nothing installed" in out.output
