"""opsctl db without hosts: Patroni's /cluster and the leader's SQL facts (recorded on the
lab), the health judgement, the choice of a candidate, and switchover/failover refusing
bad input or an unsafe cluster before anything changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsctl import audit
from opsctl.db import ops
from opsctl.db.cluster import (
    ClusterUnreadable,
    SwitchRefused,
    merge_leader_facts,
    parse_cluster,
    pick_candidate,
    split_answer,
)
from opsctl.errors import InvalidInput
from opsctl.site import load_site
from opsctl.transport import HostUnreachable, Result

FACTS = Path(__file__).parent / "facts" / "patroni"
# GET /cluster on the lab (db2 leading, db1 its synchronous replica) and LEADER_SQL's row.
CLUSTER = (FACTS / "cluster-healthy.json").read_text()
LEADER = (FACTS / "leader-sql.json").read_text()


def cluster_with(**changes: dict) -> str:
    """The recorded /cluster with some members' fields changed (name -> {field: value})."""
    data = json.loads(CLUSTER)
    for m in data["members"]:
        m.update(changes.get(m["name"], {}))
    return json.dumps(data)


def test_the_recorded_cluster_is_healthy_and_complete():
    members, paused = parse_cluster(CLUSTER)
    st = merge_leader_facts(members, paused, LEADER)
    assert st.leader.name == "db2" and not paused
    db1 = st.member("db1")
    assert (db1.role, db1.state, db1.timeline, db1.lag_bytes) == ("sync_standby", "running", 1, 0)
    assert 0 <= db1.lag_seconds < 1
    assert st.synchronous_mode and st.problems() == []
    assert [(s.name, s.active) for s in st.slots] == [("db1", True)]
    assert st.connections["operational"] == 0 and st.connections["postgres"] == 2
    out = json.loads(json.dumps(st.as_dict()))
    assert out["healthy"] and out["leader"] == "db2" and out["members"][1]["lag_bytes"] is None


@pytest.mark.parametrize(("changes", "problem"), [
    ({"db2": {"role": "replica"}}, "no leader"),
    ({"db1": {"state": "stopped"}}, "db1: stopped"),
    ({"db1": {"lag": 50_000_000}}, "db1: 50000000 bytes behind"),
    ({"db1": {"role": "replica"}}, "no replica is synchronous"),
])
def test_problems_name_what_is_wrong(changes, problem):
    members, paused = parse_cluster(cluster_with(**changes))
    st = merge_leader_facts(members, paused, LEADER)
    assert any(problem in p for p in st.problems()), st.problems()


def test_a_replica_neither_patroni_nor_the_leader_knows_the_lag_of():
    leader = json.loads(LEADER)
    leader["replication"] = []
    st = merge_leader_facts(*parse_cluster(cluster_with(db1={"lag": "unknown"})),
                            json.dumps(leader))
    assert st.problems() == ["db1: lag unknown"]


def test_synchronous_mode_comes_from_patronis_configuration():
    answer = json.dumps({"cluster": json.loads(cluster_with(db1={"role": "replica"})),
                         "config": {"synchronous_mode": True, "ttl": 20}})
    cluster, sync_mode = split_answer(answer)
    assert sync_mode
    # Patroni empties synchronous_standby_names when no replica can be synchronous: the
    # leader's SQL alone would hide the problem.
    leader = json.loads(LEADER)
    leader["synchronous_standby_names"] = ""
    st = merge_leader_facts(*parse_cluster(cluster), json.dumps(leader))
    st = type(st)(**{**st.__dict__, "synchronous_mode": sync_mode})
    assert "synchronous_mode is on but no replica is synchronous" in st.problems()
    with pytest.raises(ClusterUnreadable, match="no /cluster"):
        split_answer("{}")


def test_a_site_member_missing_from_patroni_is_a_problem():
    cluster = json.loads(CLUSTER)
    cluster["members"] = [m for m in cluster["members"] if m["name"] == "db2"]
    st = merge_leader_facts(*parse_cluster(json.dumps(cluster)), LEADER)
    st = type(st)(**{**st.__dict__, "expected": ("db1", "db2"), "synchronous_mode": True})
    assert st.problems() == ["db1: not in the cluster (Patroni not running there)",
                             "synchronous_mode is on but no replica is synchronous"]


def test_failing_archiving_is_a_problem():
    leader = json.loads(LEADER)
    leader["archiver"] = {"last_archived_wal": "000000010000000000000003", "failed_count": 4,
                          "last_archived_time": None, "last_failed_wal": "000000010000000000000004"}
    st = merge_leader_facts(*parse_cluster(CLUSTER), json.dumps(leader))
    assert st.problems() == ["WAL archiving failing (last failed 000000010000000000000004)"]


def test_garbage_is_one_line():
    with pytest.raises(ClusterUnreadable, match="not JSON"):
        parse_cluster("curl: (7) Failed to connect\n")
    with pytest.raises(ClusterUnreadable, match="no member list"):
        parse_cluster('{"members": 3}')


def test_the_candidate_is_the_synchronous_replica_and_must_be_caught_up():
    st = merge_leader_facts(*parse_cluster(CLUSTER), LEADER)
    leader, chosen = pick_candidate(st, None, 1 << 20, need_leader=True)
    assert (leader.name, chosen.name) == ("db2", "db1")
    with pytest.raises(ValueError, match="not a member"):
        pick_candidate(st, "db9", 1 << 20, need_leader=True)
    with pytest.raises(ValueError, match="leader already"):
        pick_candidate(st, "db2", 1 << 20, need_leader=True)
    lagging = merge_leader_facts(*parse_cluster(cluster_with(db1={"lag": 9000})), LEADER)
    with pytest.raises(SwitchRefused, match="9000 bytes behind .* nothing changed"):
        pick_candidate(lagging, None, 4096, need_leader=True)
    async_only = merge_leader_facts(*parse_cluster(cluster_with(db1={"role": "replica"})), LEADER)
    with pytest.raises(SwitchRefused, match="not the synchronous replica"):
        pick_candidate(async_only, "db1", 1 << 20, need_leader=True)


def test_without_a_leader_only_failover_may_promote():
    members, paused = parse_cluster(cluster_with(db2={"role": "replica", "state": "stopped"}))
    st = merge_leader_facts(members, paused, LEADER)
    with pytest.raises(SwitchRefused, match="use `opsctl db failover`"):
        pick_candidate(st, None, 1 << 20, need_leader=True)
    leader, chosen = pick_candidate(st, None, 1 << 20, need_leader=False)
    assert leader is None and chosen.name == "db1"


class FakeCluster:
    """db1 leads, db2 is its synchronous replica; patronictl hands over to the candidate."""

    def __init__(self, down: set[str] = frozenset(), lag: int = 0) -> None:
        self.leader, self.down, self.lag, self.calls = "db1", set(down), lag, []

    def cluster(self) -> str:
        other = "db2" if self.leader == "db1" else "db1"
        return json.dumps({"members": sorted([
            {"name": self.leader, "role": "leader", "state": "running", "timeline": 2,
             "host": "x"},
            {"name": other, "role": "sync_standby", "state": "running", "timeline": 2,
             "lag": self.lag, "host": "y"}], key=lambda m: m["name"])})

    def run(self, host, argv, stdin=None, timeout=120):
        if host in self.down:
            raise HostUnreachable(f"{host}: unreachable over SSH (No route to host)")
        self.calls.append((host, argv))
        if argv[0] == "python3":
            return Result(0, json.dumps({"cluster": json.loads(self.cluster()),
                                         "config": {"synchronous_mode": True}}), "")
        if argv[0] == "runuser":
            other = "db2" if self.leader == "db1" else "db1"
            return Result(0, LEADER.replace('"db1"', f'"{other}"'), "")
        if argv[0] == "patronictl":
            self.leader = argv[argv.index("--candidate") + 1]
            return Result(0, "Successfully switched over", "")
        return Result(1, "", "unexpected")


def no_sleep(_seconds: float) -> None:
    return None


def test_switchover_hands_over_and_waits_for_a_healthy_cluster(state_dir):
    site = load_site("reference")
    fake = FakeCluster(down={"db1"})  # status falls back to db2's Patroni
    fake.down = set()
    done = ops.switchover(site, t=fake, sleep=no_sleep)
    assert (done.old_leader, done.new_leader) == ("db1", "db2")
    [patronictl] = [argv for _h, argv in fake.calls if argv[0] == "patronictl"]
    assert patronictl[3:] == ["switchover", "--leader", "db1", "--candidate", "db2", "--force"]
    assert done.status.leader.name == "db2" and done.seconds_to_healthy is not None
    assert any(r["action"] == "db.switchover" and r["result"].startswith("ok")
               for r in audit.records())


def test_status_reads_the_first_member_that_answers(state_dir):
    site = load_site("reference")
    fake = FakeCluster(down={"db1"})
    st = ops.status(site, fake)
    assert st.leader.name == "db1" and fake.calls[0][0] == "db2"


@pytest.mark.parametrize(("to", "lag", "error", "code"), [
    ("db9", 0, InvalidInput, 2),
    ("db1", 0, InvalidInput, 2),
    ("db2", 50_000_000, SwitchRefused, 1),
])
def test_refused_switchovers_change_nothing(state_dir, to, lag, error, code):
    site = load_site("reference")
    fake = FakeCluster(lag=lag)
    with pytest.raises(error) as caught:
        ops.switchover(site, to=to, t=fake, sleep=no_sleep)
    assert caught.value.exit_code == code and "\n" not in str(caught.value)
    assert not any(argv[0] == "patronictl" for _h, argv in fake.calls)
    assert fake.leader == "db1"


def test_no_member_answering_is_one_line(state_dir):
    site = load_site("reference")
    with pytest.raises(ClusterUnreadable, match="no database host answered") as caught:
        ops.status(site, FakeCluster(down={"db1", "db2"}))
    assert caught.value.exit_code == 1
