"""How opsctl's commands grow with the number of hosts: apply (beside plain Ansible) and the rest.

Two steps. First a wider copy of the reference: `opsctl site new` (a province's copy, kept out
of the repository's inventory) and app hosts added with `opsctl host add`, the usual way a
site grows, then its lab brought up and converged like any site's:

    .venv/bin/python tests/bench/bench_scale.py make --name wide --app-hosts 7
    .venv/bin/opsctl lab up --site /var/lib/opsctl/bench-sites/wide
    .venv/bin/opsctl apply --site /var/lib/opsctl/bench-sites/wide --skip-tags hardening-aide

Then, for each site given and interleaved so that the machine's load hits them alike: a
no-change apply, with the wall and CPU time (opsctl, ansible-playbook and their workers on the
control node) and its host-tasks; the same playbook by plain `ansible-playbook` with Ansible's
defaults (no ansible.cfg: 5 forks, no pipelining, no Mitogen, facts gathered by every play),
given the inventory and extra variables opsctl gave its own run; `opsctl status`, `opsctl
check --site`, `opsctl jobs run compliance-scan` (every host) and `opsctl deploy` of
query-service to 1.1.0 and back (a rolling deploy, one app host at a time), wall time. The
marginal cost of a host is the difference of the medians over the difference of the host
counts (issue 16 part 3):

    W=/var/lib/opsctl/bench-sites/wide
    .venv/bin/python tests/bench/bench_scale.py run --runs 3 reference $W

Plain `ansible-playbook` takes about four times as long as opsctl's apply. To keep the run
within the hour, it can be measured in one round and left out of the others. Each run prints
one line; `summary` takes the medians over several invocations' output:

    .venv/bin/python tests/bench/bench_scale.py run --runs 1 reference $W > one.log
    .venv/bin/python tests/bench/bench_scale.py run --runs 2 --no-plain reference $W > two.log
    .venv/bin/python tests/bench/bench_scale.py summary one.log two.log

`--skip-tags hardening-aide` on every run by default: the wider site is converged without
AIDE's whole-filesystem baseline (hours of CPU at this size, and no part of a no-change apply's
cost), so both sides skip the same tasks. Run as root; take the wide lab down after
(`opsctl lab down --site DIR`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_apply_trees import one_apply

from opsctl import hosts
from opsctl.apply import history
from opsctl.apply.reach import reach
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


def plain_apply(site: str, opsctl_run: str, *options: str) -> tuple[float, float, int]:
    """The site's playbook by stock `ansible-playbook` (wall, CPU, tasks changed): Ansible's
    defaults, the site's inventory and connection (`reach`, as opsctl's apply), opsctl_run's
    extra vars, `options` added; exits when it fails."""
    where = load_site(site)
    extravars = history.run_dir(opsctl_run) / "env" / "extravars"
    empty = state_dir() / "bench-empty-ansible.cfg"
    empty.write_text("")
    root = project_root()
    env = {**os.environ, "ANSIBLE_CONFIG": str(empty), "ANSIBLE_ROLES_PATH": str(root / "roles"),
           "ANSIBLE_FILTER_PLUGINS": str(root / "plugins" / "filter"),
           "ANSIBLE_HOST_KEY_CHECKING": "True"}
    with reach(where, None, ()) as reached:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.monotonic()
        done = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"),
                               "-i", str(where.directory), "-i", str(reached.inventory),
                               "-e", f"@{extravars}", *options,
                               str(root / "playbooks" / "site.yml")],
                              cwd=root, env=env, capture_output=True, text=True, check=False)
        wall = time.monotonic() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"plain ansible-playbook on {site}: exit {done.returncode}\n"
                 f"{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    changed = sum(int(n) for n in re.findall(r"\schanged=(\d+)", done.stdout))
    return wall, (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime), changed


def run(sites: list[str], runs: int, skip_tags: str, plain: bool) -> None:
    results: dict[str, list[dict]] = {s: [] for s in sites}
    for n in range(runs):
        for site in sites:
            one = one_apply(project_root(), site, "--skip-tags", skip_tags)
            if plain:
                one["plain"], one["plain_cpu"], one["plain_changed"] = plain_apply(
                    site, one["id"], "--skip-tags", skip_tags)
            one["status"] = timed("status", "--site", site, "-o", "json")
            one["check"] = timed("check", "--site", site, "--format", "json")
            one["job"] = timed("jobs", "run", "compliance-scan", "--site", site, "-o", "json")
            one["deploy"] = timed("deploy", "query-service", "1.1.0", "--site", site)
            timed("deploy", "query-service", "1.0.0", "--site", site)
            results[site].append(one)
            print(f"run {n + 1} {site}: {json.dumps(one)}", flush=True)  # read back by RUN_LINE
    summarise(results, sites)


RUN_LINE = re.compile(r"^run \d+ (?P<site>\S+): (?P<measured>\{.*\})$", re.MULTILINE)
# What a run measures, in the order printed: key, label, unit.
MEASURES = (("wall", "apply", "s wall"), ("cpu", "apply", "s CPU"),
            ("host_tasks", "apply", "host-tasks"),
            ("plain", "plain ansible-playbook", "s wall"),
            ("plain_cpu", "plain ansible-playbook", "s CPU"),
            ("status", "status", "s"), ("check", "check --site", "s"),
            ("job", "jobs run compliance-scan", "s"), ("deploy", "deploy query-service", "s"))


def summarise(results: dict[str, list[dict]], sites: list[str]) -> None:
    """Each site's medians (over the runs that measured each), then the cost of an added host
    (largest against smallest)."""
    measured = [m for m in MEASURES
                if all(any(m[0] in r for r in rows) for rows in results.values())]
    medians = {site: {k: statistics.median(r[k] for r in rows if k in r)
                      for k in ("hosts", *(m[0] for m in measured))}
               for site, rows in results.items()}

    def line(values: dict[str, float]) -> str:
        return "; ".join(f"{label} {values[key]:.2f} {unit}" for key, label, unit in measured)

    for site, m in medians.items():
        print(f"{site}: {m['hosts']:.0f} hosts, medians: {line(m)}")
    small, large = medians[sites[0]], medians[sites[-1]]
    if large["hosts"] > small["hosts"]:
        added = large["hosts"] - small["hosts"]
        per = {k: (large[k] - small[k]) / added for k in large}
        print(f"per added host ({small['hosts']:.0f} -> {large['hosts']:.0f}): {line(per)}")


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
    runs.add_argument("--no-plain", dest="plain", action="store_false",
                      help="leave plain ansible-playbook out (about 5x an opsctl apply)")
    runs.add_argument("sites", nargs="+")
    again = commands.add_parser("summary", help="the medians of the runs that `run` printed "
                                "into these files (several invocations, one summary)")
    again.add_argument("logs", nargs="+", type=Path)
    args = parser.parse_args()
    if args.command == "make":
        print(make(args.name, args.app_hosts, args.cidr_base))
    elif args.command == "run":
        run(args.sites, args.runs, args.skip_tags, args.plain)
    else:
        results: dict[str, list[dict]] = {}
        for log in args.logs:
            for found in RUN_LINE.finditer(log.read_text()):
                results.setdefault(found["site"], []).append(json.loads(found["measured"]))
        summarise(results, sorted(results, key=lambda site: results[site][0]["hosts"]))


if __name__ == "__main__":
    main()
