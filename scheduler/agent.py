"""The agent loop: decide (engine), carry the decisions out (runner, history), sleep, repeat.

It decides at least every second and wakes exactly when the next tick is due. `stop()` (the
SIGTERM handler) ends the loop after the decisions in hand are carried out; runs still going
get SIGTERM to their process group and are recorded as interrupted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from scheduler import history as h
from scheduler.engine import Plan, RunningRun, State, decide, success_window
from scheduler.lock import ClusterLock
from scheduler.runner import JobRun, RunContext
from scheduler.spec import JobsFile

PRUNE_EVERY = timedelta(hours=1)
LOCK_HOLD = timedelta(seconds=30)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Agent:
    jobs: JobsFile
    history: h.History
    lock: ClusterLock | None = None
    clock: Callable[[], datetime] = utcnow
    # How long after a tick's due time a cluster lock stays held: the other hosts try the
    # same tick within this window (their clocks agree to well within it), so they find it
    # taken even when the job itself was quicker. Under a minute, so a job every minute is
    # not kept from its next tick.
    lock_hold: timedelta = LOCK_HOLD
    runs: dict[int, JobRun] = field(default_factory=dict)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _last_pruned: datetime | None = None
    _serial: int = 0

    def stop(self) -> None:
        self._stopping.set()

    def _state(self) -> State:
        ticks = {job: datetime.fromtimestamp(t, UTC)
                 for job, t in self.history.load_ticks().items()}
        running = tuple(RunningRun(key, r.job.name, r.tick)
                        for key, r in list(self.runs.items()) if not r.done.is_set())
        return State(ticks, running)

    def step(self, now: datetime | None = None) -> Plan:
        """One round: decide at `now` and carry the decisions out (does not wait for runs)."""
        now = now or self.clock()
        for key in [k for k, r in self.runs.items() if r.done.is_set()]:
            del self.runs[key]
        state = self._state()
        plan = decide(self.jobs.jobs, state, now)
        for kill in plan.kills:
            run = self.runs.get(kill.run_id)
            if run is not None:
                run.kill(h.REPLACED, kill.reason)
        stamp = now.timestamp()
        for skip in plan.skips:
            self.history.skipped(skip.job, skip.tick.timestamp(), stamp,
                                 skip.reason + (f" ({skip.count} ticks)" if skip.count > 1
                                                else ""), skip.count)
        # Every process of the tick is started before any run thread: a thread's start-up
        # waits for the GIL behind the others, which made the last of 1,000 jobs seconds late.
        launched = [self._prepare(s.job, s.tick, hold_lock_until=s.due + self.lock_hold)
                    for s in plan.starts]
        for run in launched:
            self._follow(run)
        self.history.save_ticks({job: t.timestamp() for job, t in plan.last_tick.items()
                                 if state.last_tick.get(job) != t})
        if self._last_pruned is None or now - self._last_pruned >= PRUNE_EVERY:
            r = self.jobs.retention
            self.history.prune(stamp, r.max_age_days, r.max_runs_per_job)
            self._last_pruned = now
        return plan

    def start(self, name: str, tick: datetime,
              hold_lock_until: datetime | None = None) -> JobRun:
        run = self._prepare(name, tick, hold_lock_until)
        self._follow(run)
        return run

    def _prepare(self, name: str, tick: datetime,
                 hold_lock_until: datetime | None = None) -> JobRun:
        """The run of one tick, its first process already started where it can be."""
        job = self.jobs.job(name)
        if job is None:
            raise KeyError(name)
        ctx = RunContext(self.history, self.lock, self.jobs.output_tail_kib,
                         clock=lambda: self.clock().timestamp(),
                         hold_lock_until=hold_lock_until.timestamp() if hold_lock_until
                         else None)
        run = JobRun(job, self.jobs.argv(job), tick, ctx)
        self._serial += 1
        self.runs[self._serial] = run
        run.launch()
        return run

    @staticmethod
    def _follow(run: JobRun) -> None:
        threading.Thread(target=run.run, name=f"job-{run.job.name}", daemon=True).start()

    def record_windows(self) -> None:
        """What the monitor's job-success alert compares with: one window per enabled job."""
        now = self.clock()
        self.history.save_windows({j.name: (success_window(j, now), j.singleton or "")
                                   for j in self.jobs.jobs if j.enabled})

    def loop(self, once: bool = False) -> None:
        self.history.abandon_unfinished(time.time())
        self.record_windows()
        while not self._stopping.is_set():
            plan = self.step()
            if once:
                break
            pause = (plan.wake - self.clock()).total_seconds() if plan.wake else 1.0
            self._stopping.wait(min(1.0, max(0.0, pause)))
        if once:
            self.wait_all()
        else:
            self.interrupt_all()

    def wait_all(self, timeout: float | None = None) -> None:
        for run in list(self.runs.values()):
            run.done.wait(timeout)

    def interrupt_all(self, timeout: float = 30.0) -> None:
        for run in list(self.runs.values()):
            run.kill(h.INTERRUPTED, "the scheduler agent stopped")
        self.wait_all(timeout)
