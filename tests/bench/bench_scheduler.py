"""1,000 jobs due in the same minute: how late does each start, with its history written?

The agent runs for real (its loop, threads, process groups, SQLite history in a temp dir)
on a clock shifted so that a minute boundary comes a few seconds after start: no waiting for
the wall clock's next minute, and every sleep and spawn is real. Each job is
`date +%s.%N`, so it reports when its process actually ran.

Two latencies per job, relative to its due time (the tick; no jitter):
  recorded  when the scheduler recorded the attempt's start in the history (just before fork)
  running   the time the job's own process printed
Beside each round, the floor: the same processes started back to back by one bare thread
(`bare`), so a loaded machine shows up in both and their ratio stays comparable.
No root needed; no lab. Usage:

    .venv/bin/python tests/bench/bench_scheduler.py [--jobs 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import subprocess
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


def bare_round(n_jobs: int) -> dict[str, float]:
    """The floor on this machine: one thread starting the same `date` processes back to back,
    with nothing else to do. Its p99 is what any Python scheduler would pay here."""
    outs = [os.fdopen(os.memfd_create("bare"), "w+b") for _ in range(n_jobs)]
    t0 = time.time()
    procs = [subprocess.Popen(("date", "+%s.%N"), stdin=subprocess.DEVNULL, stdout=out,
                              stderr=subprocess.STDOUT, start_new_session=True)
             for out in outs]
    running = []
    for proc, out in zip(procs, outs, strict=True):
        proc.wait()
        out.seek(0)
        running.append(float(out.read()) - t0)
        out.close()
    return {"bare_p50": pct(running, 50), "bare_p99": pct(running, 99)}


def one_round(n_jobs: int, lead: float) -> dict[str, float]:
    real_now = datetime.now(UTC)
    due_shifted = (real_now + timedelta(minutes=2)).replace(second=0, microsecond=0)
    offset = due_shifted - (real_now + timedelta(seconds=lead))  # shifted = real + offset

    def clock() -> datetime:
        return datetime.now(UTC) + offset

    jobs = JobsFile(tuple(
        JobSpec(name=f"job{i:04d}", schedule=f"{due_shifted.minute} {due_shifted.hour} * * *",
                command=("date", "+%s.%N"), timezone="UTC", timeout=60)
        for i in range(n_jobs)), output_tail_kib=1)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-scheduler-") as tmp:
        db = Path(tmp) / "history.db"
        history = History(db)
        agent = Agent(jobs, history, clock=clock)
        loop = threading.Thread(target=agent.loop, daemon=True)
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        loop.start()
        due_real = (due_shifted - offset).timestamp()
        deadline = time.monotonic() + lead + 120
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if time.time() < due_real:
                continue
            with History(db, readonly=True) as reader:
                finished = sum(n.get(SUCCESS, 0) for n in reader.totals().values())
            if finished >= n_jobs:
                break
        all_done = time.time() - due_real
        agent.stop()
        loop.join(30)
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        runs = history.runs(limit=n_jobs * 2)
        history.close()
    offset_s = offset.total_seconds()
    recorded, running = [], []
    for r in runs:
        recorded.append(r.started - r.tick)
        with contextlib.suppress(ValueError):
            running.append(float(r.output_tail.strip()) + offset_s - r.tick)
    return {
        "load": load, "runs": len(runs), "success": sum(r.outcome == SUCCESS for r in runs),
        "all_done": all_done,
        "rec_p50": pct(recorded, 50), "rec_p99": pct(recorded, 99),
        "run_p50": pct(running, 50), "run_p99": pct(running, 99), "run_max": max(running),
        "cpu": (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lead", type=float, default=3.0,
                        help="seconds from start to the shared due time")
    args = parser.parse_args()
    print(f"command: {Path(sys.executable).name} tests/bench/bench_scheduler.py "
          f"--jobs {args.jobs} --rounds {args.rounds}")
    print(f"machine: {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    print("round  load1  history rows (success)  start latency vs due, ms: recorded p50/p99"
          "  running p50/p99/max  all done s  agent CPU s  bare p50/p99 ms  ratio p99")
    results = []
    for i in range(args.rounds):
        r = one_round(args.jobs, args.lead) | bare_round(args.jobs)
        r["ratio"] = r["run_p99"] / r["bare_p99"]
        results.append(r)
        print(f"{i + 1:5}  {r['load']:5.1f}  {r['runs']:5} ({r['success']})"
              f"{'':13}{r['rec_p50'] * 1000:6.0f} / {r['rec_p99'] * 1000:4.0f}"
              f"{'':9}{r['run_p50'] * 1000:5.0f} / {r['run_p99'] * 1000:4.0f} / "
              f"{r['run_max'] * 1000:4.0f}  {r['all_done']:9.2f}  {r['cpu']:10.2f}"
              f"  {r['bare_p50'] * 1000:6.0f} / {r['bare_p99'] * 1000:4.0f}  {r['ratio']:8.2f}")
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    print(f"median: running p50 {med['run_p50'] * 1000:.0f} ms, p99 {med['run_p99'] * 1000:.0f}"
          f" ms; recorded p99 {med['rec_p99'] * 1000:.0f} ms; all {args.jobs} done and in the "
          f"history {med['all_done']:.2f} s after the due time; bare start p99 "
          f"{med['bare_p99'] * 1000:.0f} ms; scheduler/bare p99 {med['ratio']:.2f}x")


if __name__ == "__main__":
    main()
