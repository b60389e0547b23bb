"""`python -m scheduler [--jobs FILE.json] [--history DB] [--once]` runs the agent;
`python -m scheduler run NAME` runs one job now; `python -m scheduler history [NAME] --json`;
`python -m scheduler --jobs FILE check` validates a jobs file.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

from scheduler.agent import Agent
from scheduler.history import SUCCESS, History
from scheduler.lock import make_lock
from scheduler.spec import SpecError, load_jobs_file

# The files the scheduler_agent role's service names (opsctl's `jobs` commands pass them
# too); the defaults serve a run by hand on the host. This package runs on hosts and cannot
# read the role's defaults; tests/unit/test_one_source.py ties the two.
DEFAULT_JOBS = Path("/etc/opsctl-scheduler/jobs.json")
DEFAULT_HISTORY = Path("/var/lib/opsctl-scheduler/history.db")


def _common(defaults: bool) -> argparse.ArgumentParser:
    # Subcommands repeat the options without defaults, so `--jobs F run NAME` keeps F.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--jobs", type=Path,
                        default=DEFAULT_JOBS if defaults else argparse.SUPPRESS,
                        help=f"jobs file (JSON; default {DEFAULT_JOBS})")
    common.add_argument("--history", type=Path,
                        default=DEFAULT_HISTORY if defaults else argparse.SUPPRESS,
                        help=f"history database (SQLite; default {DEFAULT_HISTORY})")
    return common


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scheduler", parents=[_common(True)],
                                     description="opsctl's job scheduling agent")
    parser.add_argument("--once", action="store_true",
                        help="decide once, wait for what it started, exit")
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", parents=[_common(False)],
                         help="run one job now, in the foreground")
    run.add_argument("name")
    hist = sub.add_parser("history", parents=[_common(False)], help="recent runs")
    hist.add_argument("name", nargs="?")
    hist.add_argument("--limit", type=int, default=20)
    hist.add_argument("--json", action="store_true")
    sub.add_parser("check", parents=[_common(False)],
                   help="validate the jobs file and exit (the role's `validate`)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "history":
        if not args.history.exists():
            print(f"scheduler: {args.history}: no history yet", file=sys.stderr)
            return 2
        with History(args.history, readonly=True) as history:
            runs = history.runs(args.name, args.limit)
        if args.json:
            json.dump([r.as_dict() for r in runs], sys.stdout, indent=1)
            print()
        for r in [] if args.json else runs:
            started = datetime.fromtimestamp(r.started, UTC).isoformat(timespec="seconds")
            took = "-" if r.duration is None else f"{r.duration:.1f}s"
            print(f"{started}  {r.job}  #{r.attempt}  {r.outcome}  {took}  {r.reason}")
        return 0
    try:
        jobs = load_jobs_file(args.jobs)
    except SpecError as exc:
        for problem in exc.problems:
            print(f"scheduler: {problem}", file=sys.stderr)
        return 2
    if args.command == "check":
        print(f"scheduler: {args.jobs}: {len(jobs.jobs)} jobs")
        return 0
    args.history.parent.mkdir(parents=True, exist_ok=True)
    history = History(args.history)
    lock = make_lock(jobs.lock_dsn) if jobs.lock_dsn else None
    agent = Agent(jobs, history, lock)
    if args.command == "run":
        if jobs.job(args.name) is None:
            print(f"scheduler: no job {args.name!r} in {args.jobs} (jobs: "
                  f"{', '.join(j.name for j in jobs.jobs)})", file=sys.stderr)
            return 2
        run = agent.start(args.name, agent.clock())
        signal.signal(signal.SIGTERM, lambda *_: run.kill("interrupted", "SIGTERM"))
        run.done.wait()
        last = run.attempts[-1] if run.attempts else None
        print(json.dumps({"job": args.name, "outcome": run.outcome,
                          "exit_code": last.exit_code if last else None,
                          "reason": last.reason if last else "",
                          "output_tail": last.output_tail if last else ""}))
        return 0 if run.outcome == SUCCESS else 1
    signal.signal(signal.SIGTERM, lambda *_: agent.stop())
    print(f"scheduler: {len(jobs.jobs)} jobs from {args.jobs}, history {args.history}",
          file=sys.stderr, flush=True)
    try:
        agent.loop(once=args.once)
    except KeyboardInterrupt:
        agent.interrupt_all()
    history.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
