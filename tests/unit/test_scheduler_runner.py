"""The runner on real processes: process-group timeouts, output tail, retries, replace,
the cluster lock (fake), and the agent loop with an injected clock."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler import history as h
from scheduler.agent import Agent
from scheduler.engine import backoff_delay
from scheduler.history import History
from scheduler.lock import FakeLock
from scheduler.runner import TRIM_SLACK, Execution, JobRun, RunContext, _forget_head
from scheduler.spec import Backoff, JobsFile, JobSpec

TICK = datetime(2026, 6, 1, tzinfo=UTC)


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_dead(pid: int, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def history(tmp_path):
    with History(tmp_path / "history.db") as hist:
        yield hist


def test_timeout_kills_the_whole_process_group(tmp_path):
    pids = tmp_path / "pids"
    script = f"sleep 100 & echo $! > {pids}; echo $$ >> {pids}; echo started; wait"
    execution = Execution(("sh", "-c", script), timeout=0.5, grace=2)
    started = time.monotonic()
    result = execution.run()
    took = time.monotonic() - started
    assert result.outcome == h.TIMEOUT and "timeout of 0.5s" in result.reason
    assert took < 2.5
    grandchild, child = (int(p) for p in pids.read_text().split())
    assert child == execution.pid
    assert wait_dead(child) and wait_dead(grandchild), "a process of the job survived"
    assert result.output_tail == "started\n"


def test_sigterm_ignored_gets_sigkill_after_grace(tmp_path):
    pids = tmp_path / "pids"
    script = (f"trap '' TERM; sh -c 'trap \"\" TERM; sleep 100' & echo $! > {pids}; "
              "while :; do sleep 0.05; done")
    result = Execution(("sh", "-c", script), timeout=0.3, grace=0.3).run()
    assert result.outcome == h.TIMEOUT and "SIGKILL after 0.3s" in result.reason
    assert wait_dead(int(pids.read_text()))


def test_leftovers_of_a_finished_job_are_killed(tmp_path):
    pids = tmp_path / "pids"
    result = Execution(("sh", "-c", f"sleep 100 & echo $! > {pids}; exit 0"), timeout=10).run()
    assert result.outcome == h.SUCCESS and result.exit_code == 0
    assert wait_dead(int(pids.read_text()))


def test_exit_code_and_output_tail_is_the_last_kib():
    script = "i=0; while [ $i -lt 3000 ]; do echo line$i; i=$((i+1)); done; exit 3"
    result = Execution(("sh", "-c", script), timeout=10, tail_kib=1).run()
    assert result.outcome == h.FAILED and result.exit_code == 3
    assert result.reason == "exit code 3"
    assert len(result.output_tail) == 1024
    assert result.output_tail.endswith("line2999\n")


def test_a_chatty_job_holds_its_tail_in_memory_not_its_output():
    script = "head -c 20000000 /dev/zero; echo; echo the-end; sleep 0.5"
    execution = Execution(("sh", "-c", script), timeout=10, tail_kib=1)
    worker = threading.Thread(target=lambda: results.append(execution.run()))
    results: list = []
    worker.start()
    deadline, held = time.monotonic() + 5, None
    while time.monotonic() < deadline and not results:
        with contextlib.suppress(AttributeError, ValueError, OSError):
            if os.fstat(execution._out.fileno()).st_size > 20_000_000:
                time.sleep(0.3)  # the wait loop trims at least every 0.1 s
                held = os.fstat(execution._out.fileno()).st_blocks * 512
                break
        time.sleep(0.01)
    worker.join(10)
    assert held is not None and held <= 1024 + TRIM_SLACK + 4096, held
    assert results[0].outcome == h.SUCCESS
    assert results[0].output_tail.endswith("\nthe-end\n") and len(results[0].output_tail) == 1024


def test_forget_head_keeps_size_and_tail():
    with os.fdopen(os.memfd_create("t"), "w+b") as f:
        f.write(b"x" * (5 << 20) + b"tail")
        f.flush()
        _forget_head(f, 4)
        st = os.fstat(f.fileno())
        assert st.st_size == (5 << 20) + 4
        assert st.st_blocks * 512 <= 8192
        assert f.tell() == st.st_size  # the writer's offset, shared with the job, is untouched
        f.seek(-4, os.SEEK_END)
        assert f.read() == b"tail"


def test_missing_command_is_an_error_not_a_crash():
    result = Execution(("/nonexistent/cmd",), timeout=1).run()
    assert result.outcome == h.ERROR and "cannot start" in result.reason


def retrying(tmp_path, history, fail_times: int, retries: int) -> tuple[JobRun, list[float]]:
    counter = tmp_path / "count"
    counter.write_text("0")
    script = (f"n=$(cat {counter}); n=$((n+1)); echo $n > {counter}; echo try $n; "
              f"[ $n -gt {fail_times} ]")
    job = JobSpec(name="flaky", schedule="* * * * *", command=("sh", "-c", script),
                  retries=retries, backoff=Backoff(base=10, max=25))
    slept: list[float] = []

    def sleep(seconds: float) -> bool:
        slept.append(seconds)
        return False

    run = JobRun(job, job.command, TICK, RunContext(history, sleep=sleep))
    run.run()
    return run, slept


def test_retries_with_backoff_until_success(tmp_path, history):
    run, slept = retrying(tmp_path, history, fail_times=2, retries=3)
    assert run.outcome == h.SUCCESS
    assert [a.outcome for a in run.attempts] == [h.FAILED, h.FAILED, h.SUCCESS]
    assert slept == [backoff_delay(run.job, TICK, 1), backoff_delay(run.job, TICK, 2)]
    assert 5 <= slept[0] <= 10 and 10 <= slept[1] <= 20
    rows = history.runs("flaky")
    assert [(r.attempt, r.outcome) for r in reversed(rows)] == [
        (1, h.FAILED), (2, h.FAILED), (3, h.SUCCESS)]
    assert rows[0].output_tail == "try 3\n"


def test_retries_exhausted(tmp_path, history):
    run, slept = retrying(tmp_path, history, fail_times=10, retries=2)
    assert run.outcome == h.FAILED and len(run.attempts) == 3 and len(slept) == 2
    assert history.consecutive_failures("flaky") == 3


def test_kill_replaces_a_running_job(tmp_path, history):
    job = JobSpec(name="long", schedule="* * * * *", command=("sleep", "100"), retries=3)
    run = JobRun(job, job.command, TICK, RunContext(history, grace=1))
    thread = threading.Thread(target=run.run)
    thread.start()
    deadline = time.monotonic() + 5
    while (run.current is None or run.current.pid is None) and time.monotonic() < deadline:
        time.sleep(0.01)
    pid = run.current.pid
    run.kill(h.REPLACED, "replaced by the next tick")
    thread.join(5)
    assert run.outcome == h.REPLACED and len(run.attempts) == 1  # no retry after a kill
    assert wait_dead(pid)
    assert history.runs("long")[0].reason == "replaced by the next tick"


def test_singleton_cluster_runs_on_one_host_per_tick(tmp_path):
    """Two "hosts" (two histories) race for the same tick; the fake lock lets one run."""
    lock = FakeLock()
    job = JobSpec(name="extract", schedule="* * * * *", command=("sleep", "0.3"),
                  singleton="cluster")
    hosts = [History(tmp_path / f"h{i}.db") for i in range(2)]
    runs = [JobRun(job, job.command, TICK, RunContext(hist, lock=lock)) for hist in hosts]
    threads = [threading.Thread(target=r.run) for r in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert sorted(r.outcome for r in runs) == [h.SKIPPED, h.SUCCESS]
    assert lock.held == set()  # released after the run
    skipped = next(hist for hist, r in zip(hosts, runs, strict=True) if r.outcome == h.SKIPPED)
    assert "another host" in skipped.runs("extract")[0].reason
    for hist in hosts:
        hist.close()


def test_singleton_without_lock_is_an_error(history):
    job = JobSpec(name="x", schedule="* * * * *", command=("true",), singleton="cluster")
    run = JobRun(job, job.command, TICK, RunContext(history))
    assert run.run() == h.ERROR


def test_uninstalled_action_is_an_error(history):
    job = JobSpec(name="scan", schedule="* * * * *", action="compliance-scan")
    run = JobRun(job, None, TICK, RunContext(history))
    assert run.run() == h.ERROR
    assert "not installed" in history.runs("scan")[0].reason


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_agent_steps_with_an_injected_clock(tmp_path, history):
    jobs = JobsFile((JobSpec(name="tick", schedule="*/5 * * * *", command=("true",),
                             timezone="UTC"),
                     JobSpec(name="slow", schedule="*/5 * * * *", command=("sleep", "100"),
                             timezone="UTC", concurrency="replace")))
    clock = Clock(TICK)
    agent = Agent(jobs, history, clock=clock)
    agent.step()  # first sight: counts from now
    assert not agent.runs
    clock.now = TICK + timedelta(minutes=5)
    agent.step()
    assert sorted(r.job.name for r in agent.runs.values()) == ["slow", "tick"]
    first_slow = next(r for r in agent.runs.values() if r.job.name == "slow")
    first_tick = next(r for r in agent.runs.values() if r.job.name == "tick")
    assert first_tick.done.wait(5)  # else the next tick is skipped: forbid is the default
    deadline = time.monotonic() + 5
    while (first_slow.current is None or first_slow.current.pid is None) \
            and time.monotonic() < deadline:
        time.sleep(0.01)
    clock.now = TICK + timedelta(minutes=10)
    agent.step()
    assert first_slow.done.wait(10)
    assert first_slow.outcome == h.REPLACED
    agent.interrupt_all(timeout=10)
    outcomes = [(r.job, r.outcome) for r in history.runs()]
    assert ("slow", h.REPLACED) in outcomes and ("slow", h.INTERRUPTED) in outcomes
    assert outcomes.count(("tick", h.SUCCESS)) == 2
    # The last tick handled survives a restart (missed-run detection after downtime).
    assert history.load_ticks()["tick"] == (TICK + timedelta(minutes=10)).timestamp()


def test_agent_after_downtime_runs_one_catch_up(tmp_path, history):
    jobs = JobsFile((JobSpec(name="hourly", schedule="0 * * * *", command=("true",),
                             timezone="UTC", missed="run-once"),))
    history.save_ticks({"hourly": TICK.timestamp()})
    clock = Clock(TICK + timedelta(hours=5, minutes=30))  # the agent was down 5.5 hours
    agent = Agent(jobs, history, clock=clock)
    agent.step()
    agent.wait_all(10)
    clock.now += timedelta(seconds=1)
    agent.step()
    agent.wait_all(10)
    runs = history.runs("hourly")
    assert [(r.outcome, r.tick) for r in runs] == [
        (h.SUCCESS, (TICK + timedelta(hours=5)).timestamp())]


def test_main_run_and_history_json(tmp_path, capsys):
    import json

    from scheduler.__main__ import main

    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps({"jobs": [{"name": "hello", "schedule": "@daily",
                                          "command": ["echo", "hi"]}]}))
    db = tmp_path / "h.db"
    assert main(["--jobs", str(jobs), "--history", str(db), "run", "hello"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["outcome"] == "success" and out["output_tail"] == "hi\n"
    assert main(["history", "hello", "--json", "--history", str(db)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["job"] == "hello" and rows[0]["outcome"] == "success"
    assert main(["--jobs", str(jobs), "--history", str(db), "run", "nope"]) == 2
    assert os.path.exists(db)


def test_sigterm_stops_the_agent_and_its_runs(tmp_path):
    """`python -m scheduler`: a catch-up run starts; SIGTERM ends the agent cleanly, the run
    is recorded as interrupted and its process group is gone."""
    import json
    import signal
    import subprocess
    import sys

    pids = tmp_path / "pids"
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps({"jobs": [{
        "name": "long", "schedule": "* * * * *", "missed": "run-once", "timezone": "UTC",
        "command": ["sh", "-c", f"sleep 100 & echo $! > {pids}; wait"]}]}))
    db = tmp_path / "h.db"
    with History(db) as hist:  # the agent last ran an hour ago
        hist.save_ticks({"long": time.time() - 3600})
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    agent = subprocess.Popen([sys.executable, "-m", "scheduler", "--jobs", str(jobs),
                              "--history", str(db)], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not (pids.exists() and pids.read_text().strip()):
            assert time.monotonic() < deadline, "the catch-up run did not start"
            time.sleep(0.05)
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=15) == 0
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    assert wait_dead(int(pids.read_text()))
    with History(db, readonly=True) as hist:
        runs = hist.runs("long")
    started = [r for r in runs if r.outcome != h.SKIPPED]  # missed ticks: one run, not 60
    assert [r.outcome for r in started] == [h.INTERRUPTED]
    assert started[0].reason.startswith("the scheduler agent stopped")


def test_singleton_job_on_two_agents_runs_once_per_tick(tmp_path):
    """app1 and app2 both schedule a `singleton: cluster` job: each tick runs on one only."""
    lock = FakeLock()
    job = JobSpec(name="once", schedule="*/5 * * * *", command=("true",),
                  timezone="UTC", singleton="cluster")
    jobs = JobsFile((job,), lock_dsn="fake")
    clock = Clock(TICK)
    # The winner holds the lock 1 s past the due time (60 s in production), although the
    # job takes 0.2 s: the other host's attempt at the same tick finds it taken.
    agents = [Agent(jobs, History(tmp_path / f"app{i}.db"), lock=lock, clock=clock,
                    lock_hold=timedelta(seconds=1)) for i in (1, 2)]
    for agent in agents:
        agent.step()
    for n in range(1, 4):
        clock.now = TICK + timedelta(minutes=5 * n)
        for agent in agents:
            agent.step()
        for agent in agents:
            agent.wait_all(10)
    outcomes = [(r.tick, r.outcome) for agent in agents for r in agent.history.runs("once")]
    for n in range(1, 4):
        tick = (TICK + timedelta(minutes=5 * n)).timestamp()
        assert sorted(o for t, o in outcomes if t == tick) == [h.SKIPPED, h.SUCCESS]
    for agent in agents:
        agent.history.close()


def test_a_job_as_another_user_needs_a_root_agent_and_an_existing_account():
    import os
    import pwd

    from scheduler.runner import Execution, credentials

    me = pwd.getpwuid(os.geteuid()).pw_name
    assert credentials(None) is None
    assert credentials(me) is None  # the agent's own account: no switch
    missing = Execution(("true",), 10, user="no-such-account-here").run()
    assert missing.outcome == "error" and "no such account" in missing.reason
    if os.geteuid() != 0:
        other = Execution(("true",), 10, user="root").run()
        assert other.outcome == "error" and "not root" in other.reason
    else:
        done = Execution(("id", "-u"), 10, user="nobody").run()
        assert done.outcome == "success"
        assert done.output_tail.strip() == str(pwd.getpwnam("nobody").pw_uid)
