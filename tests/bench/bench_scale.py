"""How a no-change apply, `status` and `check --site` grow with the number of hosts.

Two steps. First a wider copy of the reference: `opsctl site new` (a province's copy, kept out
of the repository's inventory) and app hosts added with `opsctl host add`, the usual way a
site grows, then its lab brought up and converged like any site's:

    .venv/bin/python tests/bench/bench_scale.py make --name wide --app-hosts 7
    .venv/bin/opsctl lab up --site /var/lib/opsctl/bench-sites/wide
    .venv/bin/opsctl apply --site /var/lib/opsctl/bench-sites/wide --skip-tags hardening-aide

Then, for each site given and interleaved so that the machine's load hits them alike: a
no-change apply, with the wall and CPU time (opsctl, ansible-playbook and their workers on the
control node) and its host-tasks; `opsctl status` and `opsctl check --site`, wall time. The
marginal cost of a host is the difference of the medians over the difference of the host
counts (issue 16 part 3):

    W=/var/lib/opsctl/bench-sites/wide
    .venv/bin/python tests/bench/bench_scale.py run --runs 3 reference $W

`--skip-tags hardening-aide` on every run by default: the wider site is converged without
AIDE's whole-filesystem baseline (hours of CPU at this size, and no part of a no-change apply's
cost), so both sides skip the same tasks. Run as root; take the wide lab down after
(`opsctl lab down --site DIR`).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_apply_trees import one_apply

from opsctl import hosts
from opsctl.paths import project_root, state_dir
from opsctl.site import load_site
from opsctl.site.new import new_site

SITES = state_dir() / "bench-sites"


def make(name: str, app_hosts: int, cidr_base: str | None) -> Path:
    if (SITES / name).exists():
        shutil.rmtree(SITES / name)
    site = load_site(new_site(name, cidr_base=cidr_base, inventory_root=SITES).directory)
    internet = site.zones["internet"].cidr
    taken = {h.address for h in site.hosts.values()}
    free = (a for a in internet.hosts() if a > internet.network_address + 30 and a not in taken)
    for n in range(app_hosts):
        site = hosts.add(site, f"{name}-app{n + 3}", str(next(free)), ["app"])
    return site.directory


def timed(*args: str) -> float:
    """Wall time of one opsctl command (exit 1, a red site or a failed check, is an answer)."""
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "opsctl", *args], cwd=project_root(),
                          capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1):
        sys.exit(f"opsctl {' '.join(args)}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return time.monotonic() - start


def run(sites: list[str], runs: int, skip_tags: str) -> None:
    results: dict[str, list[dict]] = {s: [] for s in sites}
    for n in range(runs):
        for site in sites:
            one = one_apply(project_root(), site, "--skip-tags", skip_tags)
            one["status"] = timed("status", "--site", site, "-o", "json")
            one["check"] = timed("check", "--site", site, "--format", "json")
            results[site].append(one)
            print(f"run {n + 1} {site}: {one['hosts']} hosts, apply {one['wall']:.1f} s wall "
                  f"{one['cpu']:.1f} s CPU {one['host_tasks']} host-tasks {one['changed']} "
                  f"changed; status {one['status']:.1f} s; check {one['check']:.1f} s",
                  flush=True)
    keys = ("hosts", "wall", "cpu", "host_tasks", "status", "check")
    medians = {site: {k: statistics.median(r[k] for r in rows) for k in keys}
               for site, rows in results.items()}
    for site, m in medians.items():
        print(f"{site}: {m['hosts']:.0f} hosts, medians: apply {m['wall']:.1f} s wall, "
              f"{m['cpu']:.1f} s CPU, {m['host_tasks']:.0f} host-tasks "
              f"({1000 * m['cpu'] / m['host_tasks']:.0f} ms CPU each); status "
              f"{m['status']:.1f} s; check {m['check']:.1f} s")
    small, large = (medians[sites[0]], medians[sites[-1]])
    if large["hosts"] > small["hosts"]:
        added = large["hosts"] - small["hosts"]
        per = {k: (large[k] - small[k]) / added for k in keys}
        print(f"per added host ({small['hosts']:.0f} -> {large['hosts']:.0f}): apply "
              f"{per['wall']:.1f} s wall, {per['cpu']:.1f} s CPU, {per['host_tasks']:.0f} "
              f"host-tasks; status {per['status']:.2f} s; check {per['check']:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    made = commands.add_parser("make")
    made.add_argument("--name", default="wide")
    made.add_argument("--app-hosts", type=int, default=7)
    made.add_argument("--cidr-base", default=None)
    runs = commands.add_parser("run")
    runs.add_argument("--runs", type=int, default=3)
    runs.add_argument("--skip-tags", default="hardening-aide")
    runs.add_argument("sites", nargs="+")
    args = parser.parse_args()
    if args.command == "make":
        print(make(args.name, args.app_hosts, args.cidr_base))
    else:
        run(args.sites, args.runs, args.skip_tags)


if __name__ == "__main__":
    main()
