"""Every run of every job on this host, in SQLite (WAL), with retention by age and count.

A run is one attempt: a job's tick with two retries makes up to three rows. Skipped ticks
(overlap, missed, cluster lock held elsewhere) are rows too, with no duration. Counts per job
and outcome also go to `totals`, which retention never prunes, so `runs_total` stays a counter.
The last tick handled per job lives in `job_state` so a restarted agent knows what it missed.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Outcomes of a run (one attempt).
SUCCESS = "success"
FAILED = "failed"          # exited non-zero or by a signal
TIMEOUT = "timeout"        # killed at its timeout
ERROR = "error"            # could not start (no such command, action not installed)
REPLACED = "replaced"      # killed because the next tick replaced it
INTERRUPTED = "interrupted"  # the agent stopped while it ran
ABANDONED = "abandoned"    # the agent died while it ran (found at the next start)
SKIPPED = "skipped"        # the tick did not run (see reason)
RUNNING = "running"
FAILURES = (FAILED, TIMEOUT, ERROR)
OUTCOMES = (SUCCESS, FAILED, TIMEOUT, ERROR, REPLACED, INTERRUPTED, ABANDONED, SKIPPED)

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    job TEXT NOT NULL,
    tick REAL NOT NULL,
    attempt INTEGER NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    exit_code INTEGER,
    outcome TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    output_tail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS runs_job ON runs (job, id);
CREATE INDEX IF NOT EXISTS runs_started ON runs (started);
CREATE TABLE IF NOT EXISTS totals (
    job TEXT NOT NULL,
    outcome TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (job, outcome)
);
CREATE TABLE IF NOT EXISTS job_state (
    job TEXT PRIMARY KEY,
    last_tick REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS job_window (
    job TEXT PRIMARY KEY,
    seconds REAL NOT NULL,
    singleton TEXT NOT NULL DEFAULT ''
);
"""


@dataclass(frozen=True)
class Run:
    id: int
    job: str
    tick: float
    attempt: int
    started: float
    ended: float | None
    exit_code: int | None
    outcome: str
    reason: str
    output_tail: str

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else self.ended - self.started

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("tick", "started", "ended"):
            if data[key] is not None:
                data[key + "_iso"] = datetime.fromtimestamp(data[key], UTC).isoformat()
        data["duration"] = self.duration
        return data


class History:
    """Thread-safe: the agent's run threads share one connection behind a lock."""

    def __init__(self, path: Path | str, readonly: bool = False) -> None:
        self.path = str(path)
        if readonly:
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True,
                                       check_same_thread=False, timeout=5)
        else:
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------

    def start(self, job: str, tick: float, attempt: int, started: float) -> int:
        with self._lock, self._db:
            cur = self._db.execute(
                "INSERT INTO runs (job, tick, attempt, started, outcome) VALUES (?, ?, ?, ?, ?)",
                (job, tick, attempt, started, RUNNING))
            return int(cur.lastrowid or 0)

    def finish(self, run_id: int, ended: float, outcome: str, exit_code: int | None = None,
               reason: str = "", output_tail: str = "") -> None:
        with self._lock, self._db:
            row = self._db.execute("SELECT job FROM runs WHERE id = ?", (run_id,)).fetchone()
            self._db.execute(
                "UPDATE runs SET ended = ?, outcome = ?, exit_code = ?, reason = ?, "
                "output_tail = ? WHERE id = ?",
                (ended, outcome, exit_code, reason, output_tail, run_id))
            if row is not None:
                self._count(row["job"], outcome, 1)

    def skipped(self, job: str, tick: float, when: float, reason: str, count: int = 1) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO runs (job, tick, attempt, started, ended, outcome, reason) "
                "VALUES (?, ?, 0, ?, ?, ?, ?)", (job, tick, when, when, SKIPPED, reason))
            self._count(job, SKIPPED, count)

    def _count(self, job: str, outcome: str, n: int) -> None:
        self._db.execute(
            "INSERT INTO totals (job, outcome, count) VALUES (?, ?, ?) "
            "ON CONFLICT (job, outcome) DO UPDATE SET count = count + excluded.count",
            (job, outcome, n))

    def abandon_unfinished(self, when: float) -> int:
        """Runs left `running` by an agent that died: mark them abandoned."""
        with self._lock, self._db:
            rows = self._db.execute("SELECT id, job FROM runs WHERE outcome = ?",
                                    (RUNNING,)).fetchall()
            for row in rows:
                self._db.execute("UPDATE runs SET outcome = ?, ended = ?, reason = ? "
                                 "WHERE id = ?", (ABANDONED, when,
                                                  "the agent stopped while it ran", row["id"]))
                self._count(row["job"], ABANDONED, 1)
            return len(rows)

    def save_ticks(self, ticks: dict[str, float]) -> None:
        with self._lock, self._db:
            self._db.executemany(
                "INSERT INTO job_state (job, last_tick) VALUES (?, ?) "
                "ON CONFLICT (job) DO UPDATE SET last_tick = excluded.last_tick",
                ticks.items())

    def save_windows(self, windows: dict[str, tuple[float, str]]) -> None:
        """The jobs this agent runs now: {job: (success window seconds, singleton or '')}."""
        with self._lock, self._db:
            self._db.execute("DELETE FROM job_window")
            self._db.executemany("INSERT INTO job_window (job, seconds, singleton) "
                                 "VALUES (?, ?, ?)",
                                 [(j, w, s) for j, (w, s) in windows.items()])

    def windows(self) -> dict[str, tuple[float, str]]:
        with self._lock:
            try:
                rows = list(self._db.execute("SELECT job, seconds, singleton FROM job_window"))
            except sqlite3.OperationalError:  # a history written before windows existed
                return {}
        return {r["job"]: (r["seconds"], r["singleton"]) for r in rows}

    def load_ticks(self) -> dict[str, float]:
        with self._lock:
            return {r["job"]: r["last_tick"]
                    for r in self._db.execute("SELECT job, last_tick FROM job_state")}

    def prune(self, now: float, max_age_days: float, max_runs_per_job: int) -> int:
        """Delete runs older than max_age_days and all but the newest max_runs_per_job per
        job (runs still going are kept). Returns how many were deleted."""
        cutoff = now - max_age_days * 86400
        with self._lock, self._db:
            by_age = self._db.execute(
                "DELETE FROM runs WHERE started < ? AND outcome != ?", (cutoff, RUNNING))
            by_count = self._db.execute(
                "DELETE FROM runs WHERE outcome != ? AND id IN (SELECT id FROM ("
                " SELECT id, ROW_NUMBER() OVER (PARTITION BY job ORDER BY id DESC) AS n"
                " FROM runs WHERE outcome != ?) WHERE n > ?)",
                (RUNNING, RUNNING, max_runs_per_job))
            return by_age.rowcount + by_count.rowcount

    # -- reading -------------------------------------------------------------------------

    def _runs(self, sql: str, args: tuple = ()) -> list[Run]:
        with self._lock:
            return [Run(**dict(r)) for r in self._db.execute(sql, args)]

    def runs(self, job: str | None = None, limit: int = 50) -> list[Run]:
        """Newest first."""
        if job is None:
            return self._runs("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (limit,))
        return self._runs("SELECT * FROM runs WHERE job = ? ORDER BY id DESC LIMIT ?",
                          (job, limit))

    def last_run(self, job: str) -> Run | None:
        found = self._runs("SELECT * FROM runs WHERE job = ? AND outcome != ? "
                           "ORDER BY id DESC LIMIT 1", (job, SKIPPED))
        return found[0] if found else None

    def last_success(self) -> dict[str, Run]:
        rows = self._runs(
            "SELECT * FROM runs WHERE id IN (SELECT MAX(id) FROM runs WHERE outcome = ? "
            "GROUP BY job)", (SUCCESS,))
        return {r.job: r for r in rows}

    def jobs(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute(
                "SELECT job FROM runs UNION SELECT job FROM totals ORDER BY 1")]

    def totals(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        with self._lock:
            for r in self._db.execute("SELECT job, outcome, count FROM totals"):
                out.setdefault(r["job"], {})[r["outcome"]] = r["count"]
        return out

    def consecutive_failures(self, job: str) -> int:
        """Failed attempts since the job's last success (skips and replacements ignored)."""
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM runs WHERE job = ? AND outcome IN (?, ?, ?) AND id > "
                "COALESCE((SELECT MAX(id) FROM runs WHERE job = ? AND outcome = ?), 0)",
                (job, *FAILURES, job, SUCCESS)).fetchone()
            return int(row[0])
