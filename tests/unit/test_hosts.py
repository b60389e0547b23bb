"""Growing and shrinking a site: hosts.yml edited with its comments kept, the retirement
judged before anything changes, and its steps in the order that keeps the platform serving."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest

from opsctl import hosts
from opsctl.apply.history import RunRecord
from opsctl.cli.main import main
from opsctl.errors import InvalidInput
from opsctl.site import load_site
from opsctl.site.edit import add_host, edited_text, remove_hosts
from opsctl.transport import HostUnreachable, Result

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_HOSTS = ROOT / "inventory" / "reference" / "hosts.yml"


def grown(site_copy: Path):
    """The reference copy with app3 and db3 added (as `opsctl host add` does)."""
    site = hosts.add(load_site(site_copy), "app3", "172.31.20.23", ["app"])
    return hosts.add(site, "db3", "172.31.30.13", ["db_replica"])


# --- hosts.yml ---------------------------------------------------------------------------------

def test_an_edit_keeps_every_comment_and_line_it_does_not_touch():
    text = REFERENCE_HOSTS.read_text()
    assert edited_text(text, lambda _data: None) == text
    added = edited_text(text, add_host("app3", "172.31.20.23", ["internet", "app"]))
    new_lines = [ln[2:] for ln in difflib.ndiff(text.splitlines(), added.splitlines())
                 if ln.startswith("+ ")]
    # in its zone's group with its address, and in `app`
    assert new_lines == ["        app3:", "          ansible_host: 172.31.20.23", "        app3:"]
    assert [ln for ln in text.splitlines() if ln.lstrip().startswith("#")] == \
        [ln for ln in added.splitlines() if ln.lstrip().startswith("#")]
    assert edited_text(added, remove_hosts(["app3"])) == text


def test_added_hosts_join_the_site_model(site_copy):
    site = grown(site_copy)
    assert site.hosts["app3"].zone == "internet"
    assert {"app", "internet"} <= site.hosts["app3"].groups
    assert {"db", "db_replica", "secure"} <= site.hosts["db3"].groups
    # db3 is a client of Patroni's store, not a fourth etcd member
    assert [h.name for h in site.hosts_in("dcs")] == ["db1", "db2", "bak1"]
    db_dcs = next(f for f in site.flows if f.name == "db-dcs")
    assert db_dcs.ports == (2379,)


@pytest.mark.parametrize(("name", "address", "groups", "key", "said"), [
    ("app1", "172.31.20.23", ["app"], "app1", "already a host"),
    ("app3", "172.31.20.21", ["app"], "", "172.31.20.21"),  # app1's address
    ("app3", "192.0.2.5", ["app"], "192.0.2.5", "managed zones"),
    ("app3", "172.31.20", ["app"], "172.31.20", "not an IPv4 address"),
    ("app3", "172.31.20.23", ["apps"], "apps", "not a function group"),
    ("app3", "172.31.20.23", ["secure"], "secure", "not a function group"),
])
def test_a_host_that_cannot_join_is_refused_and_nothing_is_written(
        site_copy, name, address, groups, key, said):
    before = (site_copy / "hosts.yml").read_text()
    with pytest.raises(InvalidInput) as refused:
        hosts.add(load_site(site_copy), name, address, groups)
    assert said in str(refused.value) and key in str(refused.value)
    assert (site_copy / "hosts.yml").read_text() == before


# --- the retirement's plan -----------------------------------------------------------------------

def test_retiring_app3_and_db3_drains_then_stops_their_services(site_copy):
    plan = hosts.retire_plan(grown(site_copy), ["app3", "db3"])
    assert plan.drain == {"query-service": ("app3",), "access-gateway": ("app3",)}
    assert plan.units["app3"] == ("query-service.service", "access-gateway.service",
                                  *hosts.AGENT_UNITS)
    assert plan.units["db3"] == (hosts.PATRONI_UNIT, *hosts.AGENT_UNITS)
    assert plan.db_members == ("db3",)
    assert "app3:" not in plan.hosts_text and "db3:" not in plan.hosts_text


@pytest.mark.parametrize(("retired", "said"), [
    (["db2"], "etcd store"),
    (["bak1"], "etcd store"),
    (["app1", "app2"], "no host (group app)"),
    (["lb1"], "required group has no hosts"),
    (["mon1"], "required group has no hosts"),
    (["app9"], "app9"),
])
def test_a_host_the_site_cannot_lose_is_refused_before_any_host_is_asked(
        site_copy, retired, said):
    before = (site_copy / "hosts.yml").read_text()
    with pytest.raises(InvalidInput) as refused:
        hosts.retire(load_site(site_copy), retired, transport=Unreachable(),
                     platform=FakePlatform(None).platform())
    assert said in str(refused.value)
    assert (site_copy / "hosts.yml").read_text() == before


def test_the_inventory_primary_is_refused_with_the_way_forward(site_copy):
    with pytest.raises(InvalidInput, match="name another member db_primary"):
        hosts.retire_plan(grown(site_copy), ["db1"])


def test_the_unit_names_are_those_the_roles_manage():
    managed = set()
    for tasks in ROOT.glob("roles/*/tasks/*.yml"):
        managed |= set(re.findall(r"name: ([\w.-]+\.service)\b", tasks.read_text()))
    assert {hosts.PATRONI_UNIT, *hosts.AGENT_UNITS} <= managed


# --- the retirement's steps --------------------------------------------------------------------

class Unreachable:
    def run(self, host, argv, stdin=None, timeout=120):
        raise HostUnreachable(f"{host}: unreachable over SSH (No route to host)")


class FakeHosts:
    """systemctl on the hosts: every unit named is loaded except `missing`."""

    def __init__(self, log: list[str], missing: frozenset[str] = frozenset(),
                 fail: str | None = None) -> None:
        self.log, self.missing, self.fail = log, missing, fail

    def run(self, host, argv, stdin=None, timeout=120):
        if argv[:2] == ["systemctl", "show"]:
            units = argv[4:]
            return Result(0, "\n".join("not-found" if u in self.missing else "loaded"
                                       for u in units) + "\n", "")
        if argv[:2] == ["systemctl", "disable"]:
            if host == self.fail:
                return Result(1, "", "Failed to stop patroni.service: timed out")
            self.log.append(f"stop {host} {' '.join(argv[3:])}")
        return Result(0, "", "")


class FakePlatform:
    def __init__(self, leader: str | None, members: tuple[str, ...] = ("db1", "db2", "db3"),
                 result: str = "ok") -> None:
        self.leader, self.members, self.result, self.log = leader, list(members), result, []
        self.applied_to: list[str] = []

    def switchover(self, to: str) -> str:
        self.log.append(f"switchover {self.leader} -> {to}")
        self.leader = to
        return to

    def drained(self, component: str, hosts_: set[str]) -> None:
        self.log.append(f"drain {component} {','.join(sorted(hosts_))}")

    def now_members(self) -> list[str]:
        stopped = {line.split()[1] for line in self.log if line.startswith("stop ")
                   and "patroni" in line}
        return [m for m in self.members if m not in stopped]

    def apply(self, site) -> RunRecord:
        self.log.append("apply")
        self.applied_to = sorted(site.hosts)
        return RunRecord(id="r1", site=site.name, started="", request={}, result=self.result)

    def platform(self) -> hosts.Platform:
        return hosts.Platform(leader=lambda: self.leader, switchover=self.switchover,
                              set_drained=self.drained, members=self.now_members,
                              apply=self.apply)


def test_a_retirement_moves_the_leader_drains_stops_then_converges_the_rest(
        site_copy, state_dir):
    site = grown(site_copy)
    fake = FakePlatform(leader="db3")
    result = hosts.retire(site, ["app3", "db3"], transport=FakeHosts(fake.log),
                          platform=fake.platform(), sleep=lambda _s: None)
    # the rest converges (balancers, targets, expected replicas) before anything stops
    assert fake.log == [
        "switchover db3 -> db1",
        "drain query-service app3", "drain access-gateway app3",
        "apply",
        "stop app3 query-service.service access-gateway.service opsctl-scheduler.service "
        "opsctl-monitor.service",
        "stop db3 patroni.service opsctl-scheduler.service opsctl-monitor.service"]
    assert result.ok and result.switched_over == ("db3", "db1")
    assert fake.applied_to == sorted(load_site("reference").hosts)
    assert "app3" not in load_site(site_copy).hosts


def test_units_a_host_does_not_have_are_not_asked_to_stop(site_copy, state_dir):
    fake = FakePlatform(leader="db1")
    hosts.retire(grown(site_copy), ["app3"], platform=fake.platform(),
                 transport=FakeHosts(fake.log, missing=frozenset({"opsctl-monitor.service"})))
    assert "stop app3 query-service.service access-gateway.service " \
        "opsctl-scheduler.service" in fake.log


def test_a_failed_drain_stops_the_retirement_before_hosts_yml_changes(site_copy, state_dir):
    from opsctl.deploy.plan import DeployFailed

    site = grown(site_copy)
    before = (site_copy / "hosts.yml").read_text()
    fake = FakePlatform(leader="db1")
    platform = fake.platform()

    def refuse(component, hosts_):
        raise DeployFailed(f"lb1: could not set the backends of {component}")
    platform.set_drained = refuse
    with pytest.raises(hosts.RetireFailed) as failed:
        hosts.retire(site, ["app3"], transport=FakeHosts(fake.log), platform=platform)
    assert "could not set the backends" in str(failed.value)
    assert "nothing was changed" in str(failed.value)
    assert fake.log == []
    assert (site_copy / "hosts.yml").read_text() == before


def test_a_failed_converge_leaves_the_services_running_and_says_what_is_left(
        site_copy, state_dir):
    fake = FakePlatform(leader="db1", result="failed")
    with pytest.raises(hosts.RetireFailed) as failed:
        hosts.retire(grown(site_copy), ["db3"], transport=FakeHosts(fake.log),
                     platform=fake.platform())
    assert fake.log == ["apply"]  # nothing stopped
    said = str(failed.value)
    assert "run `opsctl apply`" in said and "db3: systemctl disable --now patroni.service" in said
    assert "db3" not in load_site(site_copy).hosts


def test_a_service_that_will_not_stop_is_named(site_copy, state_dir):
    fake = FakePlatform(leader="db1")
    with pytest.raises(hosts.RetireFailed) as failed:
        hosts.retire(grown(site_copy), ["db3"], transport=FakeHosts(fake.log, fail="db3"),
                     platform=fake.platform())
    assert "db3: could not stop patroni.service" in str(failed.value)
    assert "out of hosts.yml; the rest converged" in str(failed.value)


def test_a_member_patroni_still_lists_stops_the_retirement(site_copy, state_dir):
    fake = FakePlatform(leader="db1")
    platform = fake.platform()
    platform.members = lambda: ["db1", "db2", "db3"]
    clock = iter(range(0, 1000, 10))
    with pytest.raises(hosts.RetireFailed, match="Patroni still lists db3"):
        hosts.retire(grown(site_copy), ["db3"], transport=FakeHosts(fake.log),
                     platform=platform, clock=lambda: next(clock), sleep=lambda _s: None)


def test_a_host_that_does_not_answer_changes_nothing(site_copy, state_dir):
    fake = FakePlatform(leader="db1")
    with pytest.raises(hosts.RetireFailed, match="nothing was changed"):
        hosts.retire(grown(site_copy), ["app3"], transport=Unreachable(),
                     platform=fake.platform())
    assert fake.log == []


# --- the commands --------------------------------------------------------------------------------

def run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def test_the_commands_refuse_bad_input_in_one_line_and_change_nothing(capsys, site_copy,
                                                                      state_dir):
    before = (site_copy / "hosts.yml").read_text()
    code, _, err = run(capsys, "host", "add", "app3", "--address", "172.31.20.21",
                       "--group", "app", "--site", str(site_copy))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "hosts.yml" in err, err
    code, _, err = run(capsys, "host", "retire", "db2", "--site", str(site_copy))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "HOST: db2: a member of Patroni's etcd store" in err
    assert (site_copy / "hosts.yml").read_text() == before
    assert not (state_dir / "audit.log").exists()


def test_host_add_says_what_comes_next(capsys, site_copy):
    code, out, _ = run(capsys, "host", "add", "app3", "--address", "172.31.20.23",
                       "--group", "app", "--site", str(site_copy))
    assert code == 0
    assert "app3 (172.31.20.23, zone internet) is in hosts.yml under app, internet" in out
    assert "opsctl apply" in out and "app3" in load_site(site_copy).hosts
