"""History (SQLite, WAL, retention), the metrics read from it, and the monitor's collector."""

from __future__ import annotations

import json
import sqlite3

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.agent import build_registry
from monitor.collectors.scheduler import SchedulerCollector
from monitor.config import load_config
from scheduler import history as h
from scheduler.history import History
from scheduler.metrics import job_metrics, read_metrics

DAY = 86400.0
NOW = 1_780_000_000.0


def run(hist: History, job: str, started: float, took: float, outcome: str,
        attempt: int = 1) -> int:
    rid = hist.start(job, started, attempt, started)
    hist.finish(rid, started + took, outcome, 0 if outcome == h.SUCCESS else 1)
    return rid


def test_wal_mode_and_queries(tmp_path):
    with History(tmp_path / "h.db") as hist:
        mode = hist._db.execute("PRAGMA journal_mode").fetchone()[0]  # noqa: SLF001
        assert mode == "wal"
        run(hist, "a", NOW - 300, 10, h.SUCCESS)
        run(hist, "a", NOW - 200, 12, h.FAILED)
        run(hist, "b", NOW - 100, 5, h.SUCCESS)
        hist.skipped("b", NOW - 50, NOW - 50, "previous run still running")
        assert hist.last_run("a").outcome == h.FAILED
        assert hist.last_run("b").outcome == h.SUCCESS  # a skip is not a run
        assert {j: r.started for j, r in hist.last_success().items()} == {
            "a": NOW - 300, "b": NOW - 100}
        assert [r.outcome for r in hist.runs("b")] == [h.SKIPPED, h.SUCCESS]
        assert hist.jobs() == ["a", "b"]


def test_abandoned_runs_are_found_at_restart(tmp_path):
    with History(tmp_path / "h.db") as hist:
        hist.start("a", NOW, 1, NOW)
    with History(tmp_path / "h.db") as hist:
        assert hist.abandon_unfinished(NOW + 5) == 1
        assert hist.runs("a")[0].outcome == h.ABANDONED
        assert hist.totals() == {"a": {h.ABANDONED: 1}}


def test_retention_by_age_and_by_count_keeps_totals(tmp_path):
    with History(tmp_path / "h.db") as hist:
        for i in range(10):
            run(hist, "old", NOW - 100 * DAY + i, 1, h.SUCCESS)
        for i in range(30):
            run(hist, "busy", NOW - 1000 + i, 1, h.SUCCESS if i % 3 else h.FAILED)
        running = hist.start("busy", NOW - 95 * DAY, 1, NOW - 95 * DAY)  # still going
        deleted = hist.prune(NOW, max_age_days=90, max_runs_per_job=20)
        assert deleted == 10 + 10
        assert hist.runs("old") == []
        busy = hist.runs("busy", limit=100)
        assert len(busy) == 21  # the newest 20 finished plus the one still running
        assert running in {r.id for r in busy}
        assert {r.id for r in busy if r.id != running} == set(range(running - 20, running))
        # runs_total is a counter: retention does not make it go down.
        assert hist.totals()["busy"] == {h.SUCCESS: 20, h.FAILED: 10}
        assert hist.totals()["old"] == {h.SUCCESS: 10}


def test_metrics_per_job(tmp_path):
    with History(tmp_path / "h.db") as hist:
        run(hist, "a", NOW - 300, 10, h.SUCCESS)
        run(hist, "a", NOW - 200, 12, h.FAILED)
        run(hist, "a", NOW - 100, 3, h.TIMEOUT, attempt=2)
        hist.skipped("a", NOW - 50, NOW - 50, "previous run still running")
        run(hist, "b", NOW - 100, 5, h.FAILED)
        metrics = {m.job: m for m in job_metrics(hist)}
    a, b = metrics["a"], metrics["b"]
    assert a.last_success == NOW - 290 and a.last_duration == 3
    assert a.consecutive_failures == 2
    assert a.runs_by_outcome == {h.SUCCESS: 1, h.FAILED: 1, h.TIMEOUT: 1, h.SKIPPED: 1}
    assert b.last_success is None and b.consecutive_failures == 1


def scrape(collector) -> list:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return list(text_string_to_metric_families(generate_latest(registry).decode()))


def test_collector_output_follows_prometheus_conventions(tmp_path):
    db = tmp_path / "h.db"
    with History(db) as hist:
        run(hist, "backup-full", NOW - 300, 120, h.SUCCESS)
        run(hist, "backup-full", NOW - 100, 30, h.FAILED)
        hist.save_windows({"backup-full": (90000.0, ""), "extract": (3600.0, "cluster")})
    families = {f.name: f for f in scrape(SchedulerCollector(db))}
    text = generate_latest(_registry(db)).decode()
    assert set(families) == {
        "opsctl_scheduler_job_last_success_timestamp_seconds",
        "opsctl_scheduler_job_last_duration_seconds",
        "opsctl_scheduler_job_consecutive_failures",
        "opsctl_scheduler_job_runs",  # the parser strips _total from counters
        "opsctl_scheduler_job_success_window_seconds",
    }
    assert families["opsctl_scheduler_job_runs"].type == "counter"
    assert "# TYPE opsctl_scheduler_job_runs_total counter" in text
    assert 'opsctl_scheduler_job_runs_total{job_name="backup-full",outcome="success"} 1.0' in text
    registry = _registry(db)
    assert registry.get_sample_value("opsctl_scheduler_job_last_success_timestamp_seconds",
                                     {"job_name": "backup-full"}) == NOW - 180
    assert 'opsctl_scheduler_job_last_duration_seconds{job_name="backup-full"} 30.0' in text
    assert 'opsctl_scheduler_job_consecutive_failures{job_name="backup-full"} 1.0' in text
    assert ('opsctl_scheduler_job_success_window_seconds{job_name="extract",singleton="cluster"}'
            ' 3600.0') in text
    for name, family in families.items():
        if family.type == "gauge":
            assert not name.endswith("_total")


def _registry(db):
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SchedulerCollector(db))
    return registry


def test_collector_quiet_without_history_or_on_a_broken_file(tmp_path):
    assert scrape(SchedulerCollector(None)) == []
    assert read_metrics(tmp_path / "absent.db") == []
    broken = tmp_path / "broken.db"
    broken.write_text("not a database")

    def read(path):
        raise sqlite3.DatabaseError("file is not a database")

    assert scrape(SchedulerCollector(broken, read=read)) == []
    families = scrape(SchedulerCollector(broken))
    assert families == []


def test_build_registry_wires_the_collector_only_when_configured(tmp_path):
    db = tmp_path / "h.db"
    with History(db) as hist:
        run(hist, "j", NOW, 1, h.SUCCESS)
    config_file = tmp_path / "agent.json"
    config_file.write_text(json.dumps({"scheduler_history": str(db)}))
    with_history = generate_latest(build_registry(load_config(config_file))).decode()
    assert "opsctl_scheduler_job_runs_total" in with_history
    config_file.write_text("{}")
    without = generate_latest(build_registry(load_config(config_file))).decode()
    assert "opsctl_scheduler" not in without
