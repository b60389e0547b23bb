"""Run records: ids sort by time, `last` finds the newest, --retry-failed reads failed hosts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from opsctl.apply import history
from opsctl.apply.runner import ApplyRequest, NothingToRetry, _retry_limit
from opsctl.errors import NotFound
from opsctl.site import load_site


def record(run_id: str, result: str, hosts: dict[str, str], site: str = "reference"):
    return history.RunRecord(
        id=run_id, site=site, started="2026-11-29T00:00:00+00:00", request={},
        result=result, hosts={h: {"status": s, "changed": 0} for h, s in hosts.items()})


def test_run_ids_sort_by_start_time_within_one_second():
    t = datetime(2026, 11, 29, 1, 2, 3, 5000, tzinfo=UTC)
    first = history.new_run_id(t)
    second = history.new_run_id(t + timedelta(milliseconds=1))
    assert first < second


def test_last_is_the_newest_run_of_the_site(state_dir):
    history.save(record("20261129T000001.000Z-aaaa", "ok", {"app1": "ok"}))
    history.save(record("20261129T000002.000Z-bbbb", "failed", {"app1": "unreachable"}))
    history.save(record("20261129T000003.000Z-cccc", "ok", {"x1": "ok"}, site="gansu"))
    assert history.resolve("last", "reference").id == "20261129T000002.000Z-bbbb"
    assert history.resolve("last").site == "gansu"
    assert [r.id[-4:] for r in history.all_runs("reference")] == ["aaaa", "bbbb"]


def test_unknown_run_is_not_found(state_dir):
    with pytest.raises(NotFound):
        history.resolve("20990101T000000.000Z-ffff")


def test_retry_failed_limits_to_failed_and_unreachable_hosts(state_dir):
    site = load_site("reference")
    history.save(record("20261129T000001.000Z-aaaa", "failed",
                        {"app1": "ok", "app2": "unreachable", "db1": "failed", "db2": "changed"}))
    assert _retry_limit(site) == ("app2", "db1")


def test_retry_failed_after_a_clean_run_has_nothing_to_do(state_dir):
    site = load_site("reference")
    history.save(record("20261129T000001.000Z-aaaa", "ok", {"app1": "ok"}))
    with pytest.raises(NothingToRetry):
        _retry_limit(site)


def test_retry_failed_without_history_is_an_error(state_dir):
    with pytest.raises(NotFound):
        _retry_limit(load_site("reference"))


def test_request_defaults_converge_everything():
    request = ApplyRequest()
    assert (request.playbook, request.limit, request.check) == ("site.yml", (), False)
