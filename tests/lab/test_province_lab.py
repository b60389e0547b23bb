"""A province made by `opsctl site new` comes up in a second lab beside the reference one,
converges unchanged, and its own query service answers a lookup."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time

import background
import pytest
from labdata import extract, leader, public_request, summary
from test_database_lab import on, opsctl, sql
from test_deploy_lab import Load
from test_ha_lab import InsertStream, prepare_table, present
from test_monitoring_lab import query

from opsctl.apply import history
from opsctl.deploy import balancer, steps
from opsctl.lab import containers, lifecycle
from opsctl.lab.state import lab_dir
from opsctl.site import load_site
from opsctl.transport import for_site


@pytest.fixture(scope="module")
def province(reference):
    """(the province's site, its converge): made by `opsctl site new` when the tests were
    collected, brought up and converged beside the clock-bound modules (conftest.py)."""
    chain = background.CHAINS["province"]
    try:
        yield chain.site, chain.wait("apply")
    finally:
        chain.stop()  # its cleanup takes the province's lab down


def test_a_province_comes_up_beside_the_reference_and_converges(province, reference):
    national, _ = reference
    site, converged = province
    assert converged.ok, converged.tail()
    run = history.resolve("last", site.name)
    assert run.result == "ok", run.failures
    assert sorted(run.hosts) == sorted(f"gansu-{h}" for h in national.hosts)
    for one in (site, national):
        assert all(h.ssh for h in lifecycle.status(one)), one.name
    wrong = [r.as_dict() for r in lifecycle.check_flows(site) if not r.ok]
    assert not wrong, wrong[:5]


def test_the_province_query_service_answers_a_lookup(province):
    """Its own data path end to end: the extract on whichever member leads (as its job
    runs), then a lookup from its `public` namespace through its lb1 to its query service."""
    province, _ = province
    code, out = extract(province, leader(province))
    assert code == 0, out
    assert summary(out)["read"] >= 5
    deadline = time.monotonic() + 15
    while True:
        status, body = public_request(province, "GET", "/query/contracts/LAB-110101-0002",
                                      lb="gansu-lb1")
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status == 200, body
    assert body["contractor"] == "李*", body
    status, _ = public_request(province, "GET", "/query/contracts/NO-SUCH", lb="gansu-lb1")
    assert status == 404


def test_the_province_grows_by_an_app_and_a_database_host_and_retires_them_under_load(province):
    """Issue 14 part 2 on the province's own lab: `host add` app3 and db3, `lab up` (their
    containers, keys and the boundary), `apply` under a steady request and insert load; then
    `host retire` both under load. Not one request may fail nor an acknowledged row go."""
    site, _ = province
    where = str(site.directory)
    app3, db3 = f"{site.name}-app3", f"{site.name}-db3"
    added = {app3: (site.zones["internet"].cidr.network_address + 23, "app"),
             db3: (site.zones["secure"].cidr.network_address + 13, "db_replica")}
    for name, (address, group) in added.items():
        done = opsctl("host", "add", name, "--address", str(address), "--group", group,
                      "--site", where)
        assert done.returncode == 0, done.stdout + done.stderr
    site = load_site(where)
    done = opsctl("lab", "up", "--site", where)
    assert done.returncode == 0, done.stdout + done.stderr

    first = leader(site)
    prepare_table(site, first)
    members = tuple(h.name for h in site.hosts_in("db") if h.name != db3)
    with under_load(site, "grow", members) as seen:
        done = opsctl("apply", "--site", where, "--skip-tags", "hardening-aide", "-o", "json",
                      timeout=1800)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert seen.failed == [] and seen.lost == [], seen
    cluster = db_status(site)
    assert cluster["healthy"] and db3 in {m["name"] for m in cluster["members"]}, cluster
    # a replica built from the leader, streaming from it (Patroni names it the application)
    assert sql(site, cluster["leader"], "postgres", "SELECT state FROM pg_stat_replication "
               f"WHERE application_name = '{db3}'") == "streaming"
    assert agents_up(site) == set(site.hosts)
    assert [r.as_dict() for r in lifecycle.check_flows(site) if not r.ok] == []
    # app3 serves through the balancer: with app1 and app2 drained, every request is its
    t = for_site(site)
    old = {h.name for h in site.hosts_in("app")} - {app3}
    steps.set_drained(site, t, "query-service", old)
    try:
        answered = [public_request(site, "GET", "/query/version", lb=f"{site.name}-lb1")[0]
                    for _ in range(10)]
    finally:
        steps.set_drained(site, t, "query-service", set())
    assert answered == [200] * 10

    # db3 reaches the leader's PostgreSQL and the store while it is a member
    state = lifecycle.LabState.load(lab_dir(site.name))
    reaches = {(str(site.hosts[first].address), 5432), (str(site.hosts[first].address), 2379)}
    assert connects(state.plan.node(db3).netns, reaches) == reaches

    started = time.monotonic()
    with under_load(site, "retire", members) as seen:
        done = opsctl("host", "retire", app3, db3, "--site", where, "--skip-tags",
                      "hardening-aide", "-o", "json", timeout=1800)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert seen.failed == [] and seen.lost == [], seen
    retired = json.loads(done.stdout)
    assert retired["stopped"][db3][0] == "patroni.service", retired
    site = load_site(where)
    assert app3 not in site.hosts and db3 not in site.hosts
    done = opsctl("lab", "up", "--site", where)  # the network team installs the boundary
    assert done.returncode == 0, done.stdout + done.stderr
    cluster = db_status(site)
    assert cluster["healthy"] and {m["name"] for m in cluster["members"]} == set(members)
    assert agents_up(site) == set(site.hosts)
    assert [r.as_dict() for r in lifecycle.check_flows(site) if not r.ok] == []
    # the retired member is let in nowhere any more (the host firewalls)
    assert connects(state.plan.node(db3).netns, reaches) == set()
    # and no alert fired for the planned change
    window = f"{int(time.monotonic() - started) + 15}s"
    fired = {(r["metric"]["alertname"], r["metric"].get("host", ""),
              r["metric"].get("replica", ""))
             for r in query(site, f'max_over_time(ALERTS{{alertstate="firing"}}[{window}])')}
    assert not {a for a in fired if app3 in a or db3 in a}, fired
    backends = on(site, f"{site.name}-lb1", "cat", balancer.backends_path("query-service"))[1]
    assert app3 not in backends and str(added[app3][0]) not in backends
    # stopped, disabled, and its data left: the retired member's cluster is still on disk
    lab = {h.name: h for h in lifecycle.status(site)}
    assert lab[db3].systemd == "retired" and lab[db3].container == "running"
    state = lifecycle.LabState.load(lab_dir(site.name))
    node = state.plan.node(db3)
    pid = state.pids[db3]
    assert node and containers.is_container_process(pid, node.machine)


class Seen:
    failed: list[str]
    lost: list[int]

    def __repr__(self) -> str:
        return f"failed requests {self.failed}, lost rows {self.lost[:20]}"


@contextlib.contextmanager
def under_load(site, run: str, members: tuple[str, ...]):
    """Requests from `public` through lb1 and inserts from app1 for the block's length."""
    seen = Seen()
    load = Load(site, seconds=1200, lb=f"{site.name}-lb1")
    inserts = InsertStream(site, f"{run}-{int(time.time())}", seconds=1200,
                           app=f"{site.name}-app1", members=members)
    inserts.start()
    time.sleep(2)
    try:
        yield seen
    finally:
        time.sleep(2)
        inserts.stop()
        result = load.stop()
        seen.failed = [f"{n} x {why}" for why, n in result["failures"].items()]
        kept = present(site, leader(site), inserts.run_id)
        seen.lost = sorted(set(inserts.acked) - kept)
        assert result["requests"] >= 100 and len(inserts.acked) >= 50, \
            (result["requests"], len(inserts.acked))


def connects(netns: str, targets: set[tuple[str, int]]) -> set[tuple[str, int]]:
    """Those of `targets` a TCP connection from `netns` reaches within 2 s."""
    code = ("import socket, sys\n"
            "for t in sys.argv[1:]:\n"
            "    a, p = t.split(':')\n"
            "    try:\n"
            "        socket.create_connection((a, int(p)), timeout=2).close(); print(t)\n"
            "    except OSError:\n"
            "        pass\n")
    done = subprocess.run(["ip", "netns", "exec", netns, "python3", "-c", code,
                           *(f"{a}:{p}" for a, p in sorted(targets))],
                          capture_output=True, text=True, timeout=60, check=True)
    return {(t.split(":")[0], int(t.split(":")[1])) for t in done.stdout.split()}


def db_status(site) -> dict:
    done = opsctl("db", "status", "--site", str(site.directory), "-o", "json", timeout=120)
    return json.loads(done.stdout)


def agents_up(site) -> set[str]:
    """The hosts whose agent Prometheus scrapes (up == 1), once it is the site's set."""
    deadline = time.monotonic() + 120
    while True:
        up = {r["metric"]["host"] for r in query(site, 'up{job="opsctl-agent"}')
              if r["value"][1] == "1"}
        if up == set(site.hosts) or time.monotonic() > deadline:
            return up
        time.sleep(3)
