"""A no-change apply from two checkouts of opsctl, interleaved, on the lab that is up.

For a change meant to make applies cheaper: run it from the branch's worktree and from main's,
one after the other, so that the machine's load hits both alike. Per run: wall and CPU time
(opsctl, ansible-playbook and their workers on the control node), tasks changed (must be 0),
and what the run cost in Ansible's units: host-tasks (a task on a host: a worker forked, its
variables built, its result called back) and loop items (one callback each).

    .venv/bin/python tests/bench/bench_apply_trees.py --runs 3 /work/main /work/wt-branch

Each checkout needs its own build/components (python -m opsctl.reference_components.build, or
a copy: the artifacts are reproducible). Run as root after `opsctl up`, with no other lab of
the site up; the runs' records land in the state directory as any apply's do.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from opsctl.apply import history


def cost(run_id: str) -> dict[str, int]:
    """Host-tasks and loop items, from the run's own events."""
    counted = {"host_tasks": 0, "items": 0}
    events = history.run_dir(run_id) / "artifacts" / "ansible" / "job_events"
    for path in events.glob("*.json"):
        event = json.loads(path.read_text())["event"]
        if event in ("runner_on_ok", "runner_on_skipped", "runner_on_failed",
                     "runner_on_unreachable"):
            counted["host_tasks"] += 1
        elif event.startswith("runner_item_on_"):
            counted["items"] += 1
    return counted


def one_apply(tree: Path, site: str, *options: str) -> dict:
    """One `opsctl apply` from `tree` (its `options` added): wall and CPU time, tasks changed,
    hosts, host-tasks and the run's id; exits when the apply fails."""
    env = {**os.environ, "OPSCTL_ROOT": str(tree), "PYTHONPATH": str(tree)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "opsctl", "apply", "--site", site, *options,
                           "-o", "json"],
                          cwd=tree, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{tree}: apply failed\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    record = json.loads(done.stdout)
    return {"wall": wall, "cpu": (after.ru_utime - before.ru_utime
                                  + after.ru_stime - before.ru_stime),
            "changed": sum(h["changed"] for h in record["hosts"].values()),
            "hosts": len(record["hosts"]), "id": record["id"], **cost(record["id"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs=2, type=Path, metavar="TREE")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--site", default="reference")
    parser.add_argument("--warmup", type=int, default=1,
                        help="applies per tree first, not counted: two trees that ship files "
                             "differently (one archive against a copy per file) leave the "
                             "hosts as the other would not, until each has run once")
    args = parser.parse_args()
    for _ in range(args.warmup):
        for tree in args.trees:
            run = one_apply(tree, args.site)
            print(f"{tree}: warm-up, wall {run['wall']:.1f} s, changed {run['changed']}",
                  flush=True)
    walls: dict[Path, list[float]] = {tree: [] for tree in args.trees}
    for _ in range(args.runs):
        for tree in args.trees:
            run = one_apply(tree, args.site)
            walls[tree].append(run["wall"])
            print(f"{tree}: wall {run['wall']:.1f} s, cpu {run['cpu']:.1f} s, changed "
                  f"{run['changed']}, {run['host_tasks']} host-tasks, {run['items']} items, "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)
    first, second = args.trees
    for tree in args.trees:
        print(f"{tree}: median {statistics.median(walls[tree]):.1f} s  runs "
              + " ".join(f"{w:.1f}" for w in walls[tree]))
    print(f"{second} / {first}: "
          f"{statistics.median(walls[second]) / statistics.median(walls[first]):.2f}")


if __name__ == "__main__":
    main()
