"""The scheduler's decisions, as pure functions of (jobs, recorded state, now).

No threads, no sleeping, no clock of its own: the agent loop asks `decide()` what to do at
`now` and carries the decisions out. Everything here is testable with made-up times.

Per job, the ticks are the times its cron expression fires; a tick is *due* at tick + jitter
(deterministic per job and tick). A due tick whose due time is more than `grace` in the past
was *missed* (the agent was down or stalled): with `missed: skip` it is recorded as skipped,
with `missed: run-once` the latest missed tick runs once, however many were missed.
Overlap with a run of the same job that is still going: `forbid` skips the new tick,
`replace` kills the old run and starts the new one, `allow` starts it alongside.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from scheduler.cron import next_fire
from scheduler.spec import JobSpec

# A tick whose due time is at most this far in the past is on time, not missed.
DEFAULT_GRACE = timedelta(seconds=60)
# How long the agent may sleep between decisions at most.
MAX_SLEEP = timedelta(seconds=1)


@lru_cache(maxsize=65536)
def _next(expression: str, after: datetime, timezone: str) -> datetime:
    """next_fire, remembered: the agent asks the same question every second until it fires."""
    return next_fire(expression, after, ZoneInfo(timezone))


def _fraction(*parts: object) -> float:
    """A number in [0, 1) from a hash of the parts: the same parts, the same number."""
    digest = hashlib.blake2b("\0".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def jitter(job: JobSpec, tick: datetime) -> timedelta:
    """Delay of this job's start after its tick: in [0, job.jitter), fixed per job and tick."""
    if job.jitter <= 0:
        return timedelta(0)
    return timedelta(seconds=job.jitter * _fraction(job.name, tick.timestamp()))


def backoff_delay(job: JobSpec, tick: datetime, attempt: int) -> float:
    """Seconds to wait before attempt `attempt + 1` after attempt `attempt` (1-based) failed.

    Exponential: cap = min(max, base * 2**(attempt-1)); with "equal jitter" the delay lies in
    [cap/2, cap], fixed per job, tick and attempt so runs are repeatable.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    cap = min(job.backoff.max, job.backoff.base * 2 ** (attempt - 1))
    return cap / 2 + cap / 2 * _fraction(job.name, tick.timestamp(), attempt, "retry")


@dataclass(frozen=True)
class RunningRun:
    run_id: int
    job: str
    tick: datetime


@dataclass(frozen=True)
class State:
    """What the agent recorded: the last tick handled per job, and the runs still going."""

    last_tick: dict[str, datetime] = field(default_factory=dict)
    running: tuple[RunningRun, ...] = ()


@dataclass(frozen=True)
class Start:
    job: str
    tick: datetime
    due: datetime
    catch_up: bool = False
    missed: int = 0  # ticks this catch-up run stands for


@dataclass(frozen=True)
class Kill:
    job: str
    run_id: int
    reason: str


@dataclass(frozen=True)
class Skip:
    job: str
    tick: datetime
    reason: str
    count: int = 1  # ticks this skip stands for (missed ones are summed into one)


@dataclass(frozen=True)
class Plan:
    starts: tuple[Start, ...] = ()
    kills: tuple[Kill, ...] = ()
    skips: tuple[Skip, ...] = ()
    last_tick: dict[str, datetime] = field(default_factory=dict)
    wake: datetime | None = None  # when to decide again


def due_ticks(job: JobSpec, after: datetime, now: datetime,
              keep: int = 16) -> tuple[list[datetime], int, datetime]:
    """Ticks after `after` whose due time (tick + jitter) is at or before `now`: the last
    `keep` of them (oldest first), how many there were, and the next tick not yet due.
    After a long downtime this walks every missed tick once (the results are remembered)."""
    recent: deque[datetime] = deque(maxlen=keep)
    count = 0
    t = _next(job.schedule, after, job.timezone)
    while t + jitter(job, t) <= now:
        recent.append(t)
        count += 1
        t = _next(job.schedule, t, job.timezone)
    return list(recent), count, t


def decide(jobs: Iterable[JobSpec], state: State, now: datetime,
           grace: timedelta = DEFAULT_GRACE) -> Plan:
    """What to start, kill and skip at `now`, and the last tick handled per job afterwards.

    A job seen for the first time starts counting from `now`: ticks before it are not missed.
    A disabled job's ticks pass unrecorded, so enabling it later runs nothing from the past.
    """
    starts: list[Start] = []
    kills: list[Kill] = []
    skips: list[Skip] = []
    last: dict[str, datetime] = {}
    wake = now + MAX_SLEEP
    running: dict[str, list[RunningRun]] = {}
    for run in state.running:
        running.setdefault(run.job, []).append(run)
    for job in jobs:
        previous = state.last_tick.get(job.name)
        if previous is None or not job.enabled:
            last[job.name] = now
            if job.enabled:
                upcoming = next_fire(job.schedule, now, job.tz)
                wake = min(wake, upcoming + jitter(job, upcoming))
            continue
        ticks, count, upcoming = due_ticks(job, previous, now)
        wake = min(wake, upcoming + jitter(job, upcoming))
        last[job.name] = ticks[-1] if ticks else previous
        if not ticks:
            continue
        on_time = [t for t in ticks if now - (t + jitter(job, t)) <= grace]
        late = [t for t in ticks if t not in on_time]
        missed = count - len(on_time)
        if missed and job.missed == "skip":
            skips.append(Skip(job.name, late[-1], "missed (agent was not running)", missed))
        if on_time:
            # Several on-time ticks in one decision (a sub-grace stall) run once, the latest.
            if len(on_time) > 1:
                skips.append(Skip(job.name, on_time[-2], "coalesced with a later tick",
                                  len(on_time) - 1))
            start = Start(job.name, on_time[-1], on_time[-1] + jitter(job, on_time[-1]))
            if missed and job.missed == "run-once":
                skips.append(Skip(job.name, late[-1], "missed; the on-time run covers it",
                                  missed))
        elif job.missed == "run-once":
            start = Start(job.name, late[-1], now, catch_up=True, missed=missed)
        else:
            continue
        going = running.get(job.name, [])
        if going and job.concurrency == "forbid":
            skips.append(Skip(job.name, start.tick, "previous run still running"))
            continue
        if going and job.concurrency == "replace":
            kills.extend(Kill(job.name, r.run_id, f"replaced by the run of {start.tick}")
                         for r in going)
        starts.append(start)
    return Plan(tuple(starts), tuple(kills), tuple(skips), last, wake)


# Ticks looked at to find a schedule's longest gap: a year of a daily job, enough for any
# schedule whose gaps repeat within a year (`0 0 29 2 *` would count its first gap only).
WINDOW_TICKS = 400


def success_window(job: JobSpec, now: datetime) -> float:
    """Seconds within which a healthy job succeeds again after a success: its schedule's
    longest gap between ticks, plus the jitter, every attempt's timeout and the longest
    backoffs, plus five minutes. The monitor alerts when the last success is older."""
    gap, tick = 0.0, _next(job.schedule, now, job.timezone)
    for _ in range(WINDOW_TICKS):
        following = _next(job.schedule, tick, job.timezone)
        gap = max(gap, (following - tick).total_seconds())
        tick = following
    attempts = job.retries + 1
    return (gap + job.jitter + job.timeout * attempts + job.backoff.max * job.retries + 300.0)
