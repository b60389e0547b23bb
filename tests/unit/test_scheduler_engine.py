"""The pure decision core with an injected clock: ticks, jitter, overlap, missed runs, backoff."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from scheduler.engine import (
    RunningRun,
    State,
    backoff_delay,
    decide,
    jitter,
)
from scheduler.spec import Backoff, JobSpec

T0 = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)


def job(name: str = "j", schedule: str = "*/5 * * * *", **kw) -> JobSpec:
    return JobSpec(name=name, schedule=schedule, command=("true",), timezone="UTC", **kw)


def state(last: datetime, *running: RunningRun, name: str = "j") -> State:
    return State({name: last}, tuple(running))


def test_first_sight_starts_counting_from_now():
    plan = decide([job()], State(), T0 + timedelta(minutes=7))
    assert not plan.starts and not plan.skips
    assert plan.last_tick == {"j": T0 + timedelta(minutes=7)}
    assert plan.wake == T0 + timedelta(minutes=7, seconds=1)  # decide again within a second


def test_due_tick_starts_and_is_recorded():
    now = T0 + timedelta(minutes=5)
    plan = decide([job()], state(T0), now)
    assert [(s.job, s.tick, s.catch_up) for s in plan.starts] == [("j", now, False)]
    assert plan.last_tick["j"] == now
    # Next round at the same time: nothing new.
    again = decide([job()], State(plan.last_tick), now + timedelta(seconds=1))
    assert not again.starts


def test_not_yet_due_wakes_at_the_due_time():
    now = T0 + timedelta(minutes=4, seconds=59, microseconds=500_000)
    plan = decide([job()], state(T0), now)
    assert not plan.starts
    assert plan.wake == T0 + timedelta(minutes=5)


def test_jitter_is_deterministic_and_bounded():
    j = job(jitter=30.0)
    ticks = [T0 + timedelta(minutes=5 * i) for i in range(200)]
    values = [jitter(j, t).total_seconds() for t in ticks]
    assert all(0 <= v < 30 for v in values)
    assert values == [jitter(j, t).total_seconds() for t in ticks]  # repeatable
    assert len(set(values)) > 150  # spread, not one constant
    other = job(name="k", jitter=30.0)
    assert [jitter(other, t) for t in ticks[:20]] != [jitter(j, t) for t in ticks[:20]]
    assert jitter(job(), T0) == timedelta(0)


def test_jitter_delays_the_start():
    j = job(jitter=30.0)
    tick = T0 + timedelta(minutes=5)
    delay = jitter(j, tick)
    assert not decide([j], state(T0), tick + delay - timedelta(microseconds=1)).starts
    plan = decide([j], state(T0), tick + delay)
    assert plan.starts[0].tick == tick and plan.starts[0].due == tick + delay


@pytest.mark.parametrize("attempt, low, high", [(1, 5, 10), (2, 10, 20), (3, 20, 40),
                                                (4, 30, 60), (10, 30, 60)])
def test_backoff_is_exponential_capped_and_jittered(attempt, low, high):
    j = job(retries=10, backoff=Backoff(base=10, max=60))
    for i in range(50):
        d = backoff_delay(j, T0 + timedelta(minutes=i), attempt)
        assert low <= d <= high
    assert backoff_delay(j, T0, attempt) == backoff_delay(j, T0, attempt)


def test_backoff_attempt_counts_from_one():
    with pytest.raises(ValueError):
        backoff_delay(job(), T0, 0)


def test_forbid_skips_while_previous_runs():
    now = T0 + timedelta(minutes=5)
    plan = decide([job(concurrency="forbid")], state(T0, RunningRun(7, "j", T0)), now)
    assert not plan.starts and not plan.kills
    assert [(s.tick, s.reason) for s in plan.skips] == [(now, "previous run still running")]
    assert plan.last_tick["j"] == now  # the tick is handled, not retried next second


def test_replace_kills_previous_and_starts():
    now = T0 + timedelta(minutes=5)
    plan = decide([job(concurrency="replace")], state(T0, RunningRun(7, "j", T0)), now)
    assert [k.run_id for k in plan.kills] == [7]
    assert [s.tick for s in plan.starts] == [now]


def test_allow_overlaps():
    now = T0 + timedelta(minutes=5)
    plan = decide([job(concurrency="allow")], state(T0, RunningRun(7, "j", T0)), now)
    assert not plan.kills and len(plan.starts) == 1


def test_running_runs_of_other_jobs_do_not_matter():
    now = T0 + timedelta(minutes=5)
    plan = decide([job()], state(T0, RunningRun(7, "other", T0)), now)
    assert len(plan.starts) == 1


def test_missed_runs_skip_policy_records_one_skip_and_runs_nothing():
    # The agent was down from 00:00 to 02:02: 24 ticks missed.
    now = T0 + timedelta(hours=2, minutes=2)
    plan = decide([job(missed="skip")], state(T0), now)
    assert not plan.starts
    assert len(plan.skips) == 1 and plan.skips[0].count == 24
    assert plan.skips[0].tick == T0 + timedelta(hours=2)
    assert plan.last_tick["j"] == T0 + timedelta(hours=2)


def test_missed_runs_run_once_is_exactly_one_catch_up():
    now = T0 + timedelta(hours=2, minutes=2)
    plan = decide([job(missed="run-once")], state(T0), now)
    assert len(plan.starts) == 1
    start = plan.starts[0]
    assert start.catch_up and start.missed == 24 and start.due == now
    assert start.tick == T0 + timedelta(hours=2)
    # The next decisions do not run it again; the next tick runs normally.
    after = decide([job(missed="run-once")], State(plan.last_tick), now + timedelta(seconds=5))
    assert not after.starts
    on_time = decide([job(missed="run-once")], State(plan.last_tick),
                     T0 + timedelta(hours=2, minutes=5))
    assert [(s.tick, s.catch_up) for s in on_time.starts] == [
        (T0 + timedelta(hours=2, minutes=5), False)]


def test_missed_then_on_time_tick_runs_once_not_twice():
    # Down until just after 02:00: earlier ticks missed, 02:00 is on time (within grace).
    now = T0 + timedelta(hours=2, seconds=10)
    plan = decide([job(missed="run-once")], state(T0), now)
    assert [(s.tick, s.catch_up) for s in plan.starts] == [(T0 + timedelta(hours=2), False)]
    skip = decide([job(missed="skip")], state(T0), now)
    assert [s.tick for s in skip.starts] == [T0 + timedelta(hours=2)]
    assert skip.skips[0].count == 23


def test_catch_up_respects_forbid():
    now = T0 + timedelta(hours=1)
    j = job(missed="run-once", schedule="0 0 * * *")
    plan = decide([j], state(T0 - timedelta(days=3), RunningRun(1, "j", T0)), now)
    assert not plan.starts
    assert plan.skips[-1].reason == "previous run still running"


def test_disabled_job_neither_runs_nor_catches_up_later():
    j = job(missed="run-once", enabled=False)
    plan = decide([j], state(T0), T0 + timedelta(hours=3))
    assert not plan.starts and not plan.skips
    enabled = decide([replace(j, enabled=True)], State(plan.last_tick),
                     T0 + timedelta(hours=3, seconds=1))
    assert not enabled.starts


def test_daily_job_in_shanghai_fires_at_local_time():
    j = JobSpec(name="full", schedule="0 1 * * *", command=("true",))  # Asia/Shanghai
    last = datetime(2026, 6, 1, 16, 0, tzinfo=UTC)  # 00:00 in Shanghai
    plan = decide([j], State({"full": last}), datetime(2026, 6, 1, 17, 0, tzinfo=UTC))
    assert plan.starts and plan.starts[0].tick.isoformat() == "2026-06-02T01:00:00+08:00"


def test_many_jobs_due_in_the_same_minute_all_start():
    jobs = [job(name=f"j{i}", schedule="5 0 * * *") for i in range(1000)]
    last = {j.name: T0 for j in jobs}
    plan = decide(jobs, State(last), T0 + timedelta(minutes=5))
    assert len(plan.starts) == 1000


def test_a_week_down_is_one_catch_up_however_many_ticks():
    every5 = job(schedule="*/5 * * * *", missed="run-once")
    now = T0 + timedelta(days=7, minutes=2, seconds=30)
    plan = decide([every5], state(T0), now)
    assert len(plan.starts) == 1 and plan.starts[0].catch_up
    assert plan.starts[0].missed == 7 * 24 * 12
    assert plan.starts[0].tick == T0 + timedelta(days=7)
    # Every minute, a week, one tick on time: that one runs, 10,080 are recorded as missed.
    minutely = decide([job(schedule="* * * * *", missed="skip")], state(T0),
                      T0 + timedelta(days=7, minutes=1, seconds=30))
    assert [s.tick for s in minutely.starts] == [T0 + timedelta(days=7, minutes=1)]
    assert minutely.skips[0].count == 7 * 24 * 60


def test_success_window_is_the_longest_gap_plus_what_a_run_may_take():
    from datetime import UTC, datetime

    from scheduler.engine import success_window
    from scheduler.spec import Backoff, JobSpec

    now = datetime(2026, 1, 30, tzinfo=UTC)
    nightly = JobSpec("n", "0 1 * * *", command=("true",), timeout=3600, retries=1,
                      backoff=Backoff(600, 1800), jitter=60)
    assert success_window(nightly, now) == 86400 + 60 + 2 * 3600 + 1800 + 300
    # hourly except 01:30: the longest gap is two hours
    hourly = JobSpec("h", "30 0,2-23 * * *", command=("true",), timeout=600)
    assert success_window(hourly, now) == 7200 + 600 + 300
