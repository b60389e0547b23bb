"""What the monitor agent exposes about scheduled jobs, read from this host's history."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from scheduler.history import History


@dataclass(frozen=True)
class JobMetrics:
    job: str
    last_success: float | None  # Unix time the last successful run ended
    last_duration: float | None  # seconds the last finished run (any outcome) took
    consecutive_failures: int
    runs_by_outcome: dict[str, int] = field(default_factory=dict)
    # How long after its last success the job should have succeeded again (see
    # scheduler.engine.success_window), and `cluster` for a singleton; None if not run here now.
    success_window: float | None = None
    singleton: str = ""


def job_metrics(history: History) -> list[JobMetrics]:
    successes = history.last_success()
    totals = history.totals()
    windows = history.windows()
    out = []
    for job in sorted(set(history.jobs()) | set(windows)):
        last = history.last_run(job)
        success = successes.get(job)
        window, singleton = windows.get(job, (None, ""))
        out.append(JobMetrics(
            success_window=window, singleton=singleton,
            job=job,
            last_success=success.ended if success else None,
            last_duration=last.duration if last else None,
            consecutive_failures=history.consecutive_failures(job),
            runs_by_outcome=dict(totals.get(job, {}))))
    return out


def read_metrics(path: Path) -> list[JobMetrics]:
    """Open the history read-only (the monitor runs as another user); [] if it is absent."""
    if not path.exists():
        return []
    with History(path, readonly=True) as history:
        return job_metrics(history)
