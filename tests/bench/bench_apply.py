"""First full apply, no-change apply, and plain ansible-playbook defaults — side by side.

Per round: the lab is brought up fresh (new overlays, nothing installed), then
  first apply      `opsctl apply` on fresh hosts (everything installs)
  no-change        `opsctl apply` again, three ways, interleaved so noise hits all alike:
                   opsctl (mitogen), opsctl --engine ssh (pipelining + ControlPersist),
                   plain `ansible-playbook` with Ansible's default settings (no ansible.cfg:
                   no pipelining, 5 forks, per-task modules over fresh SSH sessions)
Run as root with no other lab of the site up.

`--profile` instead: one no-change `opsctl apply` on the lab that is up (OPSCTL_STATE_DIR as
it is, e.g. right after `opsctl up`), then where its time went, by role and by task, as the
markdown docs/BENCHMARKS.md keeps (`opsctl runs profile` shows the same for any run).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_scale import plain_apply

from opsctl.apply import history

ROOT = Path(__file__).resolve().parents[2]


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.monotonic()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.monotonic() - start


def opsctl(*args: str) -> list[str]:
    return [sys.executable, "-m", "opsctl", *args]


def profile_no_change(site: str, top: int) -> None:
    seconds = timed(opsctl("apply", "--site", site), dict(os.environ))
    done = subprocess.run(opsctl("runs", "profile", "last", "--top", str(top), "-o", "json"),
                          capture_output=True, text=True, check=True, cwd=ROOT)
    found = json.loads(done.stdout)
    print(f"# {' '.join(sys.argv)}: run {found['run']}, {seconds:.1f} s wall "
          f"({found['seconds']} s in Ansible, {found['before_first_task']} s before its "
          f"first task), {found['tasks']} tasks\n")
    print("| role | tasks | s | share | hosts' s | changed |\n"
          "| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in found["roles"]:
        share = 100 * r["seconds"] / (found["seconds"] or 1)
        print(f"| {r['role']} | {r['tasks']} | {r['seconds']:.1f} | {share:.0f}% | "
              f"{r['host_seconds']:.1f} | {r['changed']} |")
    print(f"\n| the {top} dearest tasks | role | s | where |\n| --- | --- | ---: | --- |")
    for t in found["dearest_tasks"]:
        print(f"| {t['task']} | {t['role']} | {t['seconds']:.1f} | `{t['path']}` |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--site", default="reference")
    parser.add_argument("--runs", type=int, default=3, help="no-change runs of each kind")
    parser.add_argument("--rounds", type=int, default=1, help="fresh labs (first applies)")
    parser.add_argument("--profile", action="store_true",
                        help="profile one no-change apply of the lab that is up")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    if args.profile:
        profile_no_change(args.site, args.top)
        return
    state = tempfile.mkdtemp(prefix="opsctl-bench-")
    # this process too: plain_apply reaches the site and reads opsctl's run from there
    os.environ["OPSCTL_STATE_DIR"] = state
    env = dict(os.environ)
    results: dict[str, list[float]] = {
        "first apply (opsctl, mitogen)": [], "no-change: opsctl (mitogen)": [],
        "no-change: opsctl --engine ssh": [], "no-change: plain ansible-playbook": []}
    site = ["--site", args.site]
    timed(opsctl("mirror", "build"), env)
    try:
        for _ in range(args.rounds):
            timed(opsctl("lab", "up", *site), env)
            results["first apply (opsctl, mitogen)"].append(timed(opsctl("apply", *site), env))
            for _ in range(args.runs):
                results["no-change: opsctl (mitogen)"].append(timed(opsctl("apply", *site), env))
                results["no-change: opsctl --engine ssh"].append(
                    timed(opsctl("apply", *site, "--engine", "ssh"), env))
                last = history.resolve("last", args.site).id
                results["no-change: plain ansible-playbook"].append(
                    plain_apply(args.site, last)[0])
            timed(opsctl("lab", "down", *site), env)
    finally:
        subprocess.run(opsctl("lab", "down", *site), env=env, capture_output=True, check=False)
    print(f"# {' '.join(sys.argv)}  (site {args.site})")
    medians = {}
    for name, values in results.items():
        medians[name] = statistics.median(values)
        print(f"{name:36s} median {medians[name]:6.2f} s   "
              f"runs {' '.join(f'{v:.2f}' for v in values)}")
    plain = medians["no-change: plain ansible-playbook"]
    for name in ("no-change: opsctl (mitogen)", "no-change: opsctl --engine ssh"):
        print(f"plain / {name.split(': ')[1]:22s} {plain / medians[name]:5.2f}x")


if __name__ == "__main__":
    main()
