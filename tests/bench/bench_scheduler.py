"""1,000 jobs due in the same minute: how late does each start, with its history written?

The agent runs for real (its loop, threads, process groups, SQLite history in a temp dir)
on a clock shifted so that a minute boundary comes a few seconds after start: no waiting for
the wall clock's next minute, and every sleep and spawn is real. Each job is
`date +%s.%N`, so it reports when its process actually ran.

Two latencies per job, relative to its due time (the tick; no jitter):
  recorded  when the scheduler recorded the attempt's start in the history (just before fork)
  running   the time the job's own process printed
No root needed; no lab. Usage:

    .venv/bin/python tests/bench/bench_scheduler.py [--jobs 1000] [--lead 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from scheduler.agent import Agent  # noqa: E402
from scheduler.history import SUCCESS, History  # noqa: E402
from scheduler.spec import JobsFile, JobSpec  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--lead", type=float, default=3.0,
                        help="seconds from start to the shared due time")
    args = parser.parse_args()

    real_now = datetime.now(UTC)
    due_shifted = (real_now + timedelta(minutes=2)).replace(second=0, microsecond=0)
    offset = due_shifted - (real_now + timedelta(seconds=args.lead))  # shifted = real + offset

    def clock() -> datetime:
        return datetime.now(UTC) + offset

    minute = due_shifted.minute
    hour = due_shifted.hour
    jobs = JobsFile(tuple(
        JobSpec(name=f"job{i:04d}", schedule=f"{minute} {hour} * * *",
                command=("date", "+%s.%N"), timezone="UTC", timeout=60)
        for i in range(args.jobs)), output_tail_kib=1)
    with tempfile.TemporaryDirectory(prefix="bench-scheduler-") as tmp:
        db = Path(tmp) / "history.db"
        history = History(db)
        agent = Agent(jobs, history, clock=clock)
        loop = threading.Thread(target=agent.loop, daemon=True)
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        loop.start()
        due_real = (due_shifted - offset).timestamp()
        deadline = time.monotonic() + args.lead + 120
        while time.monotonic() < deadline:
            time.sleep(0.25)
            if time.time() < due_real:
                continue
            with History(db, readonly=True) as reader:
                finished = sum(n.get(SUCCESS, 0) for n in reader.totals().values())
            if finished >= args.jobs:
                break
        all_done = time.time() - due_real
        agent.stop()
        loop.join(30)
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        runs = history.runs(limit=args.jobs * 2)
        history.close()
    offset_s = offset.total_seconds()
    recorded, running = [], []
    for r in runs:
        recorded.append(r.started - r.tick)
        with contextlib.suppress(ValueError):
            running.append(float(r.output_tail.strip()) + offset_s - r.tick)
    ok = sum(1 for r in runs if r.outcome == SUCCESS)
    print(f"command: {sys.executable} tests/bench/bench_scheduler.py --jobs {args.jobs}")
    print(f"jobs due at the same minute: {args.jobs}; runs in history: {len(runs)} "
          f"({ok} success); all finished {all_done:.2f}s after the due time")
    for name, values in (("recorded (history start - due)", recorded),
                         ("running  (job's own clock - due)", running)):
        if values:
            print(f"{name}: p50 {pct(values, 50) * 1000:.0f} ms, "
                  f"p99 {pct(values, 99) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms, "
                  f"min {min(values) * 1000:.0f} ms")
    print(f"scheduler CPU (user+sys, this process, children excluded): "
          f"{(cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime):.2f}s")
    print(f"machine: {sys.platform}, python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
