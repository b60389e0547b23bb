"""Scheduled jobs on this host, from the scheduler's SQLite history (read-only).

The job's name is the label `job_name`: `job` is Prometheus's own target label."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from scheduler.metrics import JobMetrics, read_metrics


class SchedulerCollector:
    def __init__(self, path: Path | None,
                 read: Callable[[Path], list[JobMetrics]] = read_metrics) -> None:
        self.path = path
        self.read = read

    def collect(self) -> Iterator[Metric]:
        if self.path is None:
            return
        try:
            jobs = self.read(self.path)
        except (OSError, sqlite3.Error):
            return
        success = GaugeMetricFamily(
            "opsctl_scheduler_job_last_success_timestamp_seconds",
            "When the job's last successful run ended (absent if it never succeeded).",
            labels=["job_name"])
        duration = GaugeMetricFamily(
            "opsctl_scheduler_job_last_duration_seconds",
            "How long the job's last finished run took.", labels=["job_name"])
        failures = GaugeMetricFamily(
            "opsctl_scheduler_job_consecutive_failures",
            "Failed attempts since the job's last success.", labels=["job_name"])
        runs = CounterMetricFamily(
            "opsctl_scheduler_job_runs", "Runs of the job by outcome (skipped ticks included).",
            labels=["job_name", "outcome"])
        window = GaugeMetricFamily(
            "opsctl_scheduler_job_success_window_seconds",
            "A healthy job succeeds again within this long after a success (its schedule's "
            "longest gap plus timeouts, retries and jitter); singleton=cluster when any host "
            "of its group may run it.", labels=["job_name", "singleton"])
        for m in jobs:
            if m.success_window is not None:
                window.add_metric([m.job, m.singleton], m.success_window)
            if m.last_success is not None:
                success.add_metric([m.job], m.last_success)
            if m.last_duration is not None:
                duration.add_metric([m.job], m.last_duration)
            failures.add_metric([m.job], m.consecutive_failures)
            for outcome, count in sorted(m.runs_by_outcome.items()):
                runs.add_metric([m.job, outcome], count)
        yield success
        yield duration
        yield failures
        yield runs
        yield window
