"""The event stream of a run becomes per-host outcomes and a recap (no Ansible needed)."""

from __future__ import annotations

from opsctl.apply.events import RunTally


def ev(kind: str, **data) -> dict:
    return {"event": kind, "event_data": data}


def test_changed_failed_and_unreachable_outcomes_are_told_apart():
    tally = RunTally()
    tally.feed(ev("playbook_on_task_start", task="base | packages"))
    changed = tally.feed(ev("runner_on_ok", host="app1", task="base | packages",
                            res={"changed": True}))
    ok = tally.feed(ev("runner_on_ok", host="app2", task="base | packages",
                       res={"changed": False}))
    failed = tally.feed(ev("runner_on_failed", host="db1", task="base | packages",
                           res={"msg": "E: Unable to locate package nope\n"}))
    dark = tally.feed(ev("runner_on_unreachable", host="db2", task="base | packages",
                         res={"msg": "ssh: connect to host 172.31.30.12 port 22: timed out"}))
    assert (changed.status, ok.status, failed.status, dark.status) == (
        "changed", "ok", "failed", "unreachable")
    assert failed.message == "E: Unable to locate package nope"
    assert [f.host for f in tally.failures] == ["db1", "db2"]
    assert tally.hosts["db2"].status == "unreachable"
    assert tally.hosts["app1"].status == "changed"
    assert tally.tasks == 1


def test_ignored_failures_do_not_fail_the_host():
    tally = RunTally()
    outcome = tally.feed(ev("runner_on_failed", host="app1", task="probe", ignore_errors=True,
                            res={"msg": "no"}))
    assert outcome.status == "ok"
    assert tally.failures == []


def test_recap_replaces_counts_from_individual_events():
    tally = RunTally()
    tally.feed(ev("runner_on_ok", host="app1", task="t", res={"changed": True}))
    tally.feed(ev("playbook_on_stats", ok={"app1": 12, "db1": 3}, changed={"app1": 2},
                  failures={}, dark={"db1": 1}, skipped={"app1": 4}))
    assert tally.hosts["app1"].ok == 12
    assert tally.hosts["app1"].changed == 2
    assert tally.hosts["app1"].skipped == 4
    assert tally.hosts["db1"].status == "unreachable"


def test_events_without_a_host_are_ignored():
    tally = RunTally()
    assert tally.feed(ev("runner_on_ok", res={})) is None
    assert tally.feed({"event": "verbose"}) is None
    assert tally.hosts == {}


def test_a_failed_loop_says_what_its_first_failed_item_said():
    tally = RunTally()
    failed = tally.feed(ev("runner_on_failed", host="app1", task="hardening | verify sshd",
                           res={"msg": "One or more items failed", "results": [
                               {"failed": False, "msg": "All assertions passed"},
                               {"failed": True, "msg": "sshd uses permitrootlogin yes"}]}))
    assert failed.message == "sshd uses permitrootlogin yes"
