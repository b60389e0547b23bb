"""`opsctl patch`: the order from the site model, the refusal of an unhealthy site, the stop at
the first failing host, apt's simulation read from a recorded real output (no hosts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsctl import audit
from opsctl.apply import history
from opsctl.errors import InvalidInput
from opsctl.patch import apt
from opsctl.patch.check import check
from opsctl.patch.plan import (
    BACKUP,
    BALANCER,
    COMPONENT,
    DB_LEADER,
    DB_REPLICA,
    MONITORING,
    PatchRefused,
    make_plan,
    reboot_reason,
    refusal,
)
from opsctl.patch.run import PatchRequest, Platform, patch
from opsctl.site import load_site
from opsctl.transport import HostUnreachable, Result
from security.debsec import SecurityData

SAMPLE = (Path(__file__).parent / "facts" / "apt" / "dist-upgrade-bookworm.txt").read_text()


@pytest.fixture
def site():
    return load_site("reference")


# --- the plan --------------------------------------------------------------------------------

def test_the_reference_order_keeps_the_platform_serving(site):
    plan = make_plan(site, "db1")
    assert [(b.kind, b.hosts) for b in plan.batches] == [
        (COMPONENT, ("app1",)), (COMPONENT, ("app2",)),
        (DB_REPLICA, ("db2",)), (DB_LEADER, ("db1",)),
        (BACKUP, ("bak1",)), (MONITORING, ("mon1",))]
    assert all(b.drain for b in plan.batches if b.kind == COMPONENT)
    assert not any(b.drain for b in plan.batches if b.kind != COMPONENT)
    [leader] = [b for b in plan.batches if b.switchover]
    assert leader.hosts == ("db1",)
    assert [b.quiet for b in plan.batches[-2:]] == ["backup", "alerts"]
    # the only balancer is left out unless named: there is nothing to send requests to
    assert [h for h, _ in plan.left_out] == ["lb1"]


def test_the_leader_is_patroni_s_not_the_inventory_s(site):
    plan = make_plan(site, "db2")
    assert [(b.kind, b.hosts, b.switchover) for b in plan.batches
            if b.kind in (DB_REPLICA, DB_LEADER)] == [
        (DB_REPLICA, ("db1",), False), (DB_LEADER, ("db2",), True)]


def test_limit_keeps_the_order_and_names_the_only_balancer_in(site):
    plan = make_plan(site, "db1", ["mon1", "db1", "lb1", "app"])
    assert [b.hosts for b in plan.batches] == [("app1",), ("app2",), ("db1",), ("mon1",),
                                               ("lb1",)]
    assert plan.batches[-1].kind == BALANCER and plan.left_out == ()


def test_batch_applies_to_component_hosts_and_may_not_drain_them_all(site):
    with pytest.raises(InvalidInput, match="would drain all 2 component hosts"):
        make_plan(site, "db1", batch=2)
    with pytest.raises(InvalidInput, match="no such host"):
        make_plan(site, "db1", ["app9"])


def test_reboot_when_told_or_when_kernel_libc_or_systemd_changed():
    assert reboot_reason(False, ["openssl", "libssl3"]) is None
    assert reboot_reason(False, ["libc6:amd64", "zstd"]) == "upgraded libc6"
    assert reboot_reason(False, ["linux-image-6.1.0-40-amd64"]) == \
        "upgraded linux-image-6.1.0-40-amd64"
    assert reboot_reason(True, []) == "/run/reboot-required"
    assert reboot_reason(True, ["systemd"]) == "/run/reboot-required (systemd)"


def test_refusal_names_every_reason():
    assert refusal([], [], []) is None
    why = refusal(["alert OpsctlHostDown firing on app2"], ["db2: 9000000 bytes behind"],
                  ["stanza main on bak1"])
    assert "alert OpsctlHostDown firing on app2" in why and "db2: 9000000 bytes behind" in why
    assert "a backup is running (stanza main on bak1)" in why and "nothing was changed" in why
    assert "opsctl aide" not in why


def test_a_file_integrity_alert_names_the_aide_commands_as_the_way_forward():
    why = refusal(["alert OpsctlFileIntegrityChanged firing on app1",
                   "alert OpsctlFileIntegrityChanged firing on db1"], [], [])
    assert "alert OpsctlFileIntegrityChanged firing on app1" in why
    assert why.count("`opsctl aide report`") == 1
    assert "`opsctl aide accept HOST... --reason TEXT`" in why
    assert "opsctl aide" not in refusal(["alert OpsctlFileIntegrityCheckFailed firing on app1"],
                                        [], [])


# --- apt ---------------------------------------------------------------------------------------

def test_the_recorded_simulation_of_a_bookworm_host():
    sim = apt.parse_simulation(SAMPLE)
    assert len(sim.changes) == 133 and sim.removals == () and sim.kept_back == ()
    assert sim.changes[0] == apt.Change("base-files", "12.4+deb12u11", "12.4+deb12u15",
                                        "Debian:12.15/oldstable")
    zstd = next(c for c in sim.changes if c.package == "zstd")
    assert (zstd.before, zstd.after) == ("1.5.4+dfsg2-5", "1.5.4+dfsg2-5+deb12u1")
    assert zstd.origin == "Debian-Security:12/oldstable-security"


def test_new_packages_removals_and_held_packages():
    text = """The following packages have been kept back:
  postgresql-15 postgresql-client-15
The following packages will be upgraded:
  libc6
Inst linux-image-6.1.0-40-amd64 (6.1.153-1 Debian-Security:12/stable-security [amd64])
Inst libc6 [2.36-9+deb12u10] (2.36-9+deb12u13 Debian:12.12/stable [amd64])
Remv oldpkg [1.0-1]
Conf libc6 (2.36-9+deb12u13 Debian:12.12/stable [amd64])
"""
    sim = apt.parse_simulation(text)
    assert sim.kept_back == ("postgresql-15", "postgresql-client-15")
    assert [c.package for c in sim.upgrades] == ["libc6"]
    assert sim.changes[0].before is None and sim.removals == ("oldpkg",)


DATA = SecurityData.from_document({
    "format": "opsctl-debsec/1", "release": "bookworm", "fetched": "2026-12-01",
    "source": "test", "open": {},
    "fixed": {"openssl": {"3.0.17-1~deb12u1": [["CVE-2025-0001", "high"]],
                          "3.0.19-1~deb12u2": [["CVE-2026-0002", "medium"]],
                          "3.0.20-1~deb12u1": [["CVE-2026-0003", "low"]]},
              "bash": {"5.2.15-2+b9": [["CVE-2026-0004", "low"]]}}})


def test_the_cves_an_upgrade_fixes_are_those_between_installed_and_new():
    sim = apt.parse_simulation(
        "Inst libssl3 [3.0.17-1~deb12u1] (3.0.19-1~deb12u2 Debian-Security:12/stable-security"
        " [amd64])\nInst bash [5.2.15-2+b8] (5.2.15-2+b13 Debian:12.15/oldstable [amd64])\n")
    installed = apt.parse_installed(
        "libssl3:amd64\topenssl\t3.0.17-1~deb12u1\t3.0.17-1~deb12u1\n"
        "bash\tbash\t5.2.15-2\t5.2.15-2+b8\n")
    fixes = apt.upgrade_fixes(sim, installed, DATA)
    # fixed at the installed version: no; fixed by 3.0.19: yes; 3.0.20 not in the mirror: no
    assert fixes == {"libssl3": (("CVE-2026-0002", "medium"),)}
    assert apt.upgrade_fixes(sim, installed, None) == {}


# --- hosts and platform, faked -------------------------------------------------------------------

UPGRADE_LINE = ("Inst libssl3 [3.0.17-1~deb12u1] (3.0.19-1~deb12u2 "
                "Debian-Security:12/stable-security [amd64])\n")


class FakeSite:
    """Every host's apt, systemd and boot id, and the site's platform; one log of what happened
    in order (`upgrade HOST`, `drain COMPONENT HOSTS`, `switchover`, ...)."""

    def __init__(self, fail: str | None = None, reboot: set[str] = frozenset(),
                 down: set[str] = frozenset()) -> None:
        self.fail, self.reboot, self.down = fail, set(reboot), set(down)
        self.log: list[str] = []
        self.boots: dict[str, int] = {}
        self.leader = "db1"
        self.problems: list[str] = []
        self.cluster: list[str] = []
        self.backups: list[str] = []

    def run(self, host, argv, stdin=None, *, timeout):
        if host in self.down:
            raise HostUnreachable(f"{host}: unreachable over SSH via lab (No route to host)")
        if argv == ["true"]:
            return Result(0, "", "")
        if argv == apt.BOOT_ID:
            return Result(0, f"boot-{self.boots.get(host, 0)}\n", "")
        if argv == apt.SIMULATE:
            return Result(0, UPGRADE_LINE, "")
        if argv == apt.INSTALLED:
            return Result(0, "libssl3:amd64\topenssl\t3.0.17-1~deb12u1\t3.0.17-1~deb12u1\n", "")
        if argv == apt.UPGRADE:
            self.log.append(f"upgrade {host}")
            if host == self.fail:
                return Result(100, "", "E: Sub-process /usr/bin/dpkg returned an error code (1)")
            return Result(0, "", "")
        if argv == apt.REBOOT_REQUIRED:
            return Result(0 if host in self.reboot else 1, "", "")
        if argv == ["systemctl", "reboot"]:
            self.log.append(f"reboot {host}")
            self.boots[host] = self.boots.get(host, 0) + 1
            return Result(0, "", "")
        if argv[-2:] == ["is-system-running", "--wait"]:
            return Result(0, "running\n", "")
        if argv == apt.UPDATE:
            return Result(0, "", "")
        if argv[0] == "python3":  # Patroni's REST API (check asks for the leader): not here
            return Result(1, "", "connection refused")
        raise AssertionError(f"unexpected command on {host}: {argv}")

    def platform(self) -> Platform:
        def switchover() -> str:
            self.log.append(f"switchover {self.leader}")
            self.leader = "db2" if self.leader == "db1" else "db1"
            return self.leader

        return Platform(
            problems=lambda: list(self.problems),
            cluster_problems=lambda: list(self.cluster),
            leader=lambda: self.leader,
            backups_running=lambda: list(self.backups),
            switchover=switchover,
            set_drained=lambda c, hosts: self.log.append(
                f"drain {c} {','.join(sorted(hosts)) or '-'}"),
            component_health=lambda host, c: (self.log.append(f"health {host} {c}") or True, ""))


def run_patch(site, fake, **request):
    return patch(site, PatchRequest(**request), transport=fake, platform=fake.platform(),
                 sleep=lambda _s: None)


def test_drain_upgrade_health_back_then_replica_switchover_leader(site, state_dir):
    fake = FakeSite(reboot={"db2"})
    result = run_patch(site, fake)
    assert result.ok
    components = site.component_order()
    drain_app1 = [f"drain {c} app1" for c in components]
    back = [f"drain {c} -" for c in components]
    health_app1 = [f"health app1 {c}" for c in components]
    assert fake.log == [
        *drain_app1, "upgrade app1", *health_app1, *back,
        *[f"drain {c} app2" for c in components], "upgrade app2",
        *[f"health app2 {c}" for c in components], *back,
        "upgrade db2", "reboot db2", "switchover db1", "upgrade db1",
        "upgrade bak1", "upgrade mon1"]
    record = history.load(result.record.id)
    assert record.result == "ok" and record.request["action"] == "patch"
    assert record.hosts["db2"]["rebooted"] == "/run/reboot-required"
    assert record.hosts["app1"]["upgraded"][0]["after"] == "3.0.19-1~deb12u2"
    assert "lb1" not in record.hosts
    [entry] = [r for r in audit.records() if r["action"] == "patch"]
    assert entry["result"].startswith("ok: app1, app2, db2, db1, bak1, mon1")


@pytest.mark.parametrize("break_it, said", [
    (lambda f: f.problems.append("alert OpsctlReplicationLag firing on db1"),
     "alert OpsctlReplicationLag firing on db1"),
    (lambda f: f.cluster.append("db2: 9000000 bytes behind (bound 1048576)"),
     "database cluster: db2: 9000000 bytes behind"),
    (lambda f: f.backups.append("stanza main on bak1"), "a backup is running"),
    (lambda f: f.down.add("lb1"), "lb1: unreachable"),
])
def test_an_unhealthy_site_is_refused_and_nothing_is_touched(site, state_dir, break_it, said):
    fake = FakeSite()
    break_it(fake)
    with pytest.raises(PatchRefused, match=said) as refused:
        run_patch(site, fake)
    assert refused.value.exit_code == 1
    assert fake.log == []
    assert history.all_runs() == []
    [entry] = audit.records()
    assert entry["action"] == "patch" and entry["result"].startswith("refused: ")


def test_a_patch_refused_for_aides_finding_says_how_to_review_and_accept_it(site, state_dir):
    fake = FakeSite()
    fake.problems.append("alert OpsctlFileIntegrityChanged firing on app1")
    with pytest.raises(PatchRefused, match="review them with `opsctl aide report`"):
        run_patch(site, fake)
    assert fake.log == []
    [entry] = audit.records()
    assert "opsctl aide accept HOST... --reason TEXT" in entry["result"]


def test_mon1_held_back_by_aides_finding_names_the_aide_commands(site, state_dir):
    fake = FakeSite()
    platform = fake.platform()
    calls = {"n": 0}

    def problems() -> list[str]:  # healthy at the start, the alert fires by mon1's turn
        calls["n"] += 1
        return [] if calls["n"] == 1 else ["alert OpsctlFileIntegrityChanged firing on app1"]

    platform.problems = problems
    result = patch(site, PatchRequest(limit=("mon1",)), transport=fake, platform=platform,
                   sleep=lambda _s: None)
    assert not result.ok and "upgrade mon1" not in fake.log
    assert "`opsctl aide report`" in result.record.failures[0]["message"]


def test_the_first_failing_host_stops_it_and_the_rest_are_untouched(site, state_dir):
    fake = FakeSite(fail="db2")
    result = run_patch(site, fake)
    assert not result.ok and result.record.rc == 1
    assert [e for e in fake.log if e.startswith(("upgrade", "switchover"))] == [
        "upgrade app1", "upgrade app2", "upgrade db2"]
    record = history.load(result.record.id)
    assert record.result == "failed"
    assert record.hosts["db2"]["status"] == "failed"
    assert {h: record.hosts[h]["status"] for h in ("db1", "bak1", "mon1")} == {
        "db1": "untouched", "bak1": "untouched", "mon1": "untouched"}
    assert record.failures[0]["host"] == "db2"
    assert "dpkg returned an error code" in record.failures[0]["message"]
    assert json.loads((history.run_dir(record.id) / "steps.json").read_text())
    assert audit.records()[-1]["result"].startswith("failed: db2: ")


def test_a_failed_component_host_stays_drained(site, state_dir):
    fake = FakeSite(fail="app1")
    result = run_patch(site, fake)
    assert not result.ok
    components = site.component_order()
    assert fake.log == [*[f"drain {c} app1" for c in components], "upgrade app1",
                        *[f"drain {c} app1" for c in components]]


def test_mon1_waits_for_no_alert_and_bak1_for_no_backup(site, state_dir):
    fake = FakeSite()
    platform = fake.platform()
    calls = {"n": 0}

    def backups() -> list[str]:
        calls["n"] += 1
        return ["stanza main on bak1"] if calls["n"] == 2 else []  # running at bak1's turn

    platform.backups_running = backups
    result = patch(site, PatchRequest(limit=("bak1",)), transport=fake, platform=platform,
                   sleep=lambda _s: None)
    assert result.ok and calls["n"] == 3
    assert any(s["step"] == "waiting" for s in result.steps)


def test_check_lists_upgrades_and_their_cves_per_host_and_changes_nothing(site):
    fake = FakeSite(reboot={"db1"})
    report = check(site, transport=fake, data=(DATA, "test data"))
    assert report.ok and [h.host for h in report.hosts] == [
        "app1", "app2", "db2", "db1", "bak1", "mon1"]
    db1 = report.as_dict()["hosts"][3]
    assert db1["reboot"] == "/run/reboot-required"
    assert db1["changes"] == [{"package": "libssl3", "before": "3.0.17-1~deb12u1",
                               "after": "3.0.19-1~deb12u2",
                               "origin": "Debian-Security:12/stable-security",
                               "cves": ["CVE-2026-0002"]}]
    assert fake.log == []  # no upgrade, no reboot
    # It refreshed apt's lists on the hosts: the audit log says who did, and what it found.
    [record] = [r for r in audit.records() if r["action"] == "patch.check"]
    assert record["args"]["site"] == site.name
    assert record["result"].startswith("ok: ") and "of 6 hosts" in record["result"]


def test_check_names_a_host_it_cannot_reach(site):
    fake = FakeSite(down={"bak1"})
    report = check(site, transport=fake, data=(None, "none"))
    assert not report.ok
    assert "bak1: unreachable" in next(h.error for h in report.hosts if h.host == "bak1")
    [record] = [r for r in audit.records() if r["action"] == "patch.check"]
    assert record["result"].startswith("failed: bak1 could not be checked")


def test_the_check_table_shows_versions_cves_and_the_reboot(site):
    from rich.console import Console

    from opsctl.cli.patch import render_check

    report = check(site, transport=FakeSite(reboot={"db1"}), data=(DATA, "test data"))
    console = Console(width=200, record=True)
    console.print(render_check(report))
    text = console.export_text()
    assert "3.0.17-1~deb12u1 → 3.0.19-1~deb12u2" in text and "CVE-2026-0002" in text
    assert "/run/reboot-required" in text


class StaysDown(FakeSite):
    """db2 reboots and never answers again."""

    def run(self, host, argv, stdin=None, *, timeout):
        if host == "db2" and self.boots.get("db2"):
            raise HostUnreachable("db2: unreachable over SSH via lab (Connection refused)")
        return super().run(host, argv, stdin, timeout=timeout)


def test_a_host_that_does_not_come_back_within_the_reboot_timeout_stops_it(site, state_dir):
    fake = StaysDown(reboot={"db2"})
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    result = patch(site, PatchRequest(reboot_timeout=600), transport=fake,
                   platform=fake.platform(), clock=lambda: now[0], sleep=sleep)
    assert not result.ok
    assert "did not come back from its reboot within 600s" in result.record.failures[0]["message"]
    assert 600 <= now[0] < 610  # it waited the whole timeout it was given, no more
    assert "switchover db1" not in fake.log  # the leader keeps leading


def test_the_reboot_timeout_is_the_operators(monkeypatch, site):
    from click.testing import CliRunner

    from opsctl.cli import patch as cli_patch
    from opsctl.cli.main import cli

    seen = []
    monkeypatch.setattr(cli_patch, "run_patch", lambda s, request, progress: seen.append(
        request) or (_ for _ in ()).throw(SystemExit(0)))
    monkeypatch.setattr(cli_patch, "site_to_change", lambda s, o: site)
    done = CliRunner().invoke(cli, ["patch", "--reboot-timeout", "1200"])
    assert done.exit_code == 0, done.output
    assert seen[0].reboot_timeout == 1200
    assert CliRunner().invoke(cli, ["patch", "--reboot-timeout", "5"]).exit_code == 2
