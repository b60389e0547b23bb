"""The pure decisions of a rolling deploy: order, batches, refusals, rollback, pruning."""

from __future__ import annotations

import pytest

from opsctl.deploy.plan import (
    DeployRefused,
    HostRelease,
    Next,
    after_health,
    prunable,
    rollback_target,
    rolling_plan,
)

HOSTS = ["app1", "app2", "app3"]


def test_one_host_at_a_time_in_inventory_order():
    current = {"app1": "1.0.0", "app2": "1.0.0", "app3": "1.0.0"}
    assert rolling_plan(HOSTS, current, "1.1.0") == [["app1"], ["app2"], ["app3"]]


def test_batches_and_hosts_already_on_the_version_are_skipped():
    current = {"app1": "1.0.0", "app2": "1.1.0", "app3": "1.0.0"}
    assert rolling_plan(HOSTS, current, "1.1.0") == [["app1"], ["app3"]]
    assert rolling_plan(HOSTS, {h: "1.0.0" for h in HOSTS}, "1.1.0", batch=2) == [
        ["app1", "app2"], ["app3"]]


def test_version_already_running_everywhere_is_refused():
    with pytest.raises(DeployRefused, match="already running on every host"):
        rolling_plan(HOSTS, {h: "1.1.0" for h in HOSTS}, "1.1.0")


def test_a_batch_may_not_drain_the_whole_group():
    with pytest.raises(DeployRefused, match="would drain all 3 hosts"):
        rolling_plan(HOSTS, {h: "1.0.0" for h in HOSTS}, "1.1.0", batch=3)
    assert rolling_plan(["app1"], {"app1": "1.0.0"}, "1.1.0") == [["app1"]]


def test_health_decides_restore_or_roll_back():
    assert after_health({"app1": True}) is Next.RESTORE
    assert after_health({"app1": True, "app2": False}) is Next.ROLL_BACK
    assert after_health({}) is Next.ROLL_BACK


def release(host: str, current: str, previous: str | None) -> HostRelease:
    return HostRelease(host, current, previous, (current,), True)


def test_rollback_target_is_the_common_previous_release():
    assert rollback_target([release("app1", "1.1.0", "1.0.0"),
                            release("app2", "1.1.0", "1.0.0")]) == "1.0.0"
    with pytest.raises(DeployRefused, match="different previous releases"):
        rollback_target([release("app1", "1.1.0", "1.0.0"), release("app2", "1.1.0", "0.9")])
    with pytest.raises(DeployRefused, match="no host has a previous release"):
        rollback_target([release("app1", "1.0.0", None)])


def test_prune_keeps_three_never_current_or_previous():
    newest_first = ["1.3.0", "1.2.0", "9.9.9-broken", "1.1.0", "1.0.0"]
    assert prunable(newest_first, {"1.3.0", "1.0.0"}) == ["9.9.9-broken", "1.1.0"]
    assert prunable(["1.1.0", "1.0.0"], {"1.1.0", "1.0.0"}) == []


def test_retry_failed_looks_at_applies_not_deploys(state_dir):
    from opsctl.apply import history

    apply_run = history.RunRecord(id="20261129T000001.000Z-aaaa", site="s", started="t",
                                  request={"playbook": "site.yml"}, result="ok")
    deploy_run = history.RunRecord(id="20261129T000002.000Z-bbbb", site="s", started="t",
                                   request={"action": "deploy", "component": "c"},
                                   result="failed", hosts={"app1": {"status": "failed"}})
    history.save(apply_run)
    history.save(deploy_run)
    assert history.last_finished("s").id == deploy_run.id
    assert history.last_finished("s", applies_only=True).id == apply_run.id


class _Hosts:
    """A transport whose hosts answer (exit code, output) or raise what they hold."""

    def __init__(self, answers):
        self.answers = answers

    def run(self, host, argv, stdin=None, *, timeout):
        from opsctl.transport import Result

        answer = self.answers[host]
        if isinstance(answer, Exception):
            raise answer
        return Result(answer[0], answer[1], "")


def test_a_host_that_cannot_be_asked_is_named_with_why_not_as_an_exit_code():
    from opsctl.deploy.engine import probe
    from opsctl.deploy.plan import DeployFailed
    from opsctl.deploy.steps import unanswered as _unanswered
    from opsctl.transport import HostKeyChanged, HostUnreachable

    hosts = _Hosts({
        "app1": (0, ""),
        "app2": HostKeyChanged("app2: host key changed (pinned SHA256:a, offered SHA256:b)"),
        "lb1": HostUnreachable("lb1: no answer within 10 s running true"),
        # a remote command's own 255 is a result, not an unreachable host
        "db1": (255, "exit 255"),
    })
    assert _unanswered(hosts, ["app1", "app2", "lb1", "db1"]) == [
        "app2: host key changed (pinned SHA256:a, offered SHA256:b)",
        "lb1: no answer within 10 s running true",
        "db1: `true` exited 255 (exit 255)"]
    with pytest.raises(DeployFailed, match="releases of query-service: app2: host key changed"):
        probe(hosts, "app2", "query-service")
