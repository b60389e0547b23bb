"""A rolling OS patch under load (issue 14): total time, the longest window a host is out of
rotation, failed requests (target 0), p50/p99 latency during the patch against idle.

    .venv/bin/python tests/bench/bench_patch.py [--site reference] [--runs 3] [--threads 4]

On a converged lab of the site (run `opsctl up --site reference` first; root, like the other
lab benchmarks). The upgrade is one small package on every host `opsctl patch` takes
(tests/lab/patchprobe.py, the lab test's probe): version 1.0.0 is installed by hand on each
first; round N publishes 1.0.N into the lab's mirror (the previous round's taken out) and runs
`opsctl patch --site S -o json` as a user would, while a bounded HTTPS load client
(tests/lab/loadgen.py, keep-alive off, bench_deploy.py's) in the lab's `public` namespace asks
lb1 for query-service's /version. Each round:
  ready      the Patroni leader back on the site's db_primary (`opsctl db switchover --to`:
             patch hands it to the replica and leaves it there), then `opsctl status` green
             (at most --green-timeout s): every round patches the hosts in the same order;
  baseline   the client alone for --baseline-seconds: p50/p99, requests/s;
  patch      the client (at most --requests requests and --max-seconds s) from 1 s before
             `opsctl patch` starts to 1 s after it ends: failed requests, p50/p99 of the
             requests that started while the patch process ran (its start-up and health gate
             included), the process's wall time and the run record's own seconds (the
             rollout alone, after the gate); every host must then hold 1.0.N and have
             upgraded nothing else.
Per-host windows come from the patch's own step log (`-o json`'s "steps", the run's
steps.json: each step's seconds since the rollout began, written as the step completes):
  component hosts (drained at lb1) are out of rotation at least from their "drained" step
  (lb1's backends swap returns once nginx's old workers have finished) to their "healthy"
  step (the swap that puts them back starts after it), and at most from the step before
  "drained" (the drain starts after it) to "restored to the balancer" (the swap back has
  returned); the longest out-of-rotation window quotes the upper bound;
  nothing drains the other hosts and the probe restarts nothing on them: their window is the
  time being patched, from the previous host's last step to their "healthy" step; the
  old leader's includes its switchover, also given alone; a reboot (only where
  /run/reboot-required exists) is given alone as well.

Refused before anything changes when the mirror already holds a probe package (a run that
did not clean up) or `opsctl patch --check` finds anything pending (another upgrade would be
measured with the probe's). Afterwards, whatever happened: the probe out of the mirror (the
index re-signed, its manifest unchanged) and purged from the hosts, as the lab test leaves
them; the leader on db_primary; `opsctl status` asked once more. Medians across rounds, then
the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "lab"))  # patchprobe: the lab test's probe package

from bench_deploy import pct, start_load  # noqa: E402
from patchprobe import (  # noqa: E402
    PROBE,
    build_deb,
    install,
    installed_version,
    probes_in,
    publish,
    purge,
    withdraw,
)

from opsctl.db import ops as db_ops  # noqa: E402
from opsctl.errors import OpsctlError  # noqa: E402
from opsctl.mirror.build import mirror_dir, read_manifest  # noqa: E402
from opsctl.site import load_site  # noqa: E402
from opsctl.site.model import Site  # noqa: E402
from opsctl.transport import Transport, for_site  # noqa: E402

PATCH_TIMEOUT = 3600  # one `opsctl patch`; its own per-host waits are shorter
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


class BenchError(Exception):
    """The benchmark cannot go on; the message says why (and what to do)."""


def opsctl(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "opsctl", *args], capture_output=True,
                          text=True, env=ENV, check=False, timeout=timeout)


def tail(done: subprocess.CompletedProcess[str]) -> str:
    return (done.stdout[-2000:] + "\n" + done.stderr[-2000:]).strip()


def probe_version(n: int) -> str:
    """0: installed by hand before round 1; N: what round N publishes."""
    return f"1.0.{n}"


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


# --- the site before and between rounds ------------------------------------------------------

def preflight(site: Site) -> list[str]:
    """The hosts `opsctl patch` takes, in its order, once nothing else is pending; BenchError
    (nothing changed) otherwise."""
    left = probes_in(mirror_dir())
    if left:
        raise BenchError(
            f"the mirror already holds {', '.join(p.name for p in left)} (a test or benchmark "
            "that did not clean up); nothing was changed. Take them out (the index re-signed) "
            "with: PYTHONPATH=.:tests/lab .venv/bin/python -c 'from patchprobe import probes_in,"
            " withdraw; from opsctl.mirror.build import mirror_dir; [withdraw(mirror_dir(), p) "
            "for p in probes_in(mirror_dir())]'")
    done = opsctl("patch", "--check", "--site", str(site.directory), "-o", "json")
    if done.returncode != 0:
        raise BenchError(f"`opsctl patch --check` failed; nothing was changed:\n{tail(done)}")
    report = json.loads(done.stdout)
    pending = [f"{h['host']}: " + ", ".join([c["package"] for c in h["changes"]] +
                                             [f"remove {r}" for r in h["removals"]] +
                                             ([f"reboot ({h['reboot']})"] if h["reboot"] else []))
               for h in report["hosts"] if h["changes"] or h["removals"] or h["reboot"]]
    if pending:
        raise BenchError("the patch would do more than the probe's upgrade ("
                         + "; ".join(pending) + "): patch the site first; nothing was changed")
    return [h["host"] for h in report["hosts"]]


def expected_leader(site: Site) -> str | None:
    """The site's db_primary (as patch's plan reads it when Patroni is silent)."""
    return next(iter(sorted(site.groups.get("db_primary", ()))), None)


def leader_home(site: Site, t: Transport) -> bool:
    """The leader on db_primary (a switchover when it is not); True when one was needed."""
    want = expected_leader(site)
    if want is None or db_ops.leader_name(site, t) == want:
        return False
    done = opsctl("db", "switchover", "--to", want, "--site", str(site.directory))
    if done.returncode != 0:
        raise BenchError(f"`opsctl db switchover --to {want}` failed:\n{tail(done)}")
    return True


def wait_green(site: Site, timeout: float) -> float:
    """Seconds until `opsctl status` was green; BenchError past `timeout`."""
    start = time.monotonic()
    while (done := opsctl("status", "--site", str(site.directory))).returncode != 0:
        if time.monotonic() - start > timeout:
            raise BenchError(f"the site was not green within {timeout:g}s (patch would refuse):"
                             f"\n{tail(done)}")
        time.sleep(10)
    return round(time.monotonic() - start, 1)


# --- what one round measured -----------------------------------------------------------------

def host_windows(steps: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per host, its windows in seconds from the patch's step log (see the docstring)."""
    seen: dict[str, dict[str, float]] = {}
    previous = 0.0  # the rollout's start
    for step in steps:
        marks = seen.setdefault(step["host"], {"before": previous})
        marks.setdefault(step["step"], step["t"])
        previous = step["t"]
    out: dict[str, dict[str, float]] = {}
    for host, m in seen.items():
        w: dict[str, float] = {}
        if "drained" in m and "restored to the balancer" in m:
            w["out_of_rotation_max_s"] = round(m["restored to the balancer"] - m["before"], 2)
            w["out_of_rotation_min_s"] = round(m["healthy"] - m["drained"], 2)
            w["window_s"] = w["out_of_rotation_max_s"]
        elif "healthy" in m:
            w["window_s"] = round(m["healthy"] - m["before"], 2)
        if "switched over" in m:
            w["switchover_s"] = round(m["switched over"] - m["switchover"], 2)
        if "rebooted" in m:
            w["reboot_s"] = round(m["rebooted"] - m["rebooting"], 2)
        out[host] = w
    return out


def latency(samples: list[list[Any]], seconds: float) -> dict[str, float]:
    ok = [s[1] for s in samples if s[2]]
    return {"requests": len(samples), "failed": sum(1 for s in samples if not s[2]),
            "rps": round(len(samples) / seconds, 1) if seconds > 0 else float("nan"),
            "p50_ms": ms(pct(ok, 0.50)), "p99_ms": ms(pct(ok, 0.99))}


def longest(windows: dict[str, dict[str, float]], key: str) -> dict[str, Any]:
    have = {h: w[key] for h, w in windows.items() if key in w}
    if not have:
        return {"host": None, "seconds": None}
    host = max(have, key=lambda h: have[h])
    return {"host": host, "seconds": have[host]}


def check_upgrades(record: dict[str, Any], hosts: list[str], before: str, after: str) -> None:
    """Every host upgraded the probe from `before` to `after`, and nothing else."""
    want = [(PROBE, before, after)]
    wrong = {h: [(c["package"], c["before"], c["after"]) for c in
                 record["hosts"].get(h, {}).get("upgraded", [])] for h in hosts}
    wrong = {h: got for h, got in wrong.items() if got != want}
    if wrong:
        raise BenchError(f"the patch upgraded other than {PROBE} {before} -> {after}: {wrong}")


# --- one round -------------------------------------------------------------------------------

def baseline(site: Site, args: argparse.Namespace, tmp: Path, tag: str) -> dict[str, float]:
    proc, out, _ = start_load(site, 10**9, args.baseline_seconds, args.threads, tmp, tag)
    proc.wait(timeout=args.baseline_seconds + 60)
    base = json.loads(out.read_text())
    return latency(base["samples"], base["seconds"])


def patch_under_load(site: Site, args: argparse.Namespace, tmp: Path,
                     tag: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any],
                                        tuple[float, float]]:
    """`opsctl patch` while the client runs: (the process, the client's summary, the patch's
    start and end on the client's clock)."""
    proc, out, stop = start_load(site, args.requests, args.max_seconds, args.threads, tmp, tag)
    origin = time.monotonic()  # the client's own clock starts a few ms later
    try:
        time.sleep(1)
        t0 = time.monotonic() - origin
        done = opsctl("patch", "--site", str(site.directory), "-o", "json",
                      timeout=PATCH_TIMEOUT)
        t1 = time.monotonic() - origin
        time.sleep(1)
    finally:
        stop.touch()
        proc.wait(timeout=60)
    return done, json.loads(out.read_text()), (t0, t1)


def one_round(site: Site, t: Transport, args: argparse.Namespace, tmp: Path, n: int,
              debs: dict[int, Path], hosts: list[str]) -> dict[str, Any]:
    switched = leader_home(site, t)
    waited = wait_green(site, args.green_timeout)
    idle = baseline(site, args, tmp, f"baseline{n}")
    before, after = probe_version(n - 1), probe_version(n)
    publish(mirror_dir(), debs[n])
    if n > 1:  # the previous round's; 1.0.0 was installed by hand, never published
        withdraw(mirror_dir(), mirror_dir() / debs[n - 1].name)
    done, load, (t0, t1) = patch_under_load(site, args, tmp, f"patch{n}")
    if done.returncode != 0:
        raise BenchError(f"round {n}: `opsctl patch` exited {done.returncode} (a host it "
                         f"stopped at may be left drained; its message says):\n{tail(done)}")
    record = json.loads(done.stdout)
    check_upgrades(record, hosts, before, after)
    versions = {h: installed_version(t, h) for h in hosts}
    if set(versions.values()) != {after}:
        raise BenchError(f"round {n}: not every host holds {after}: {versions}")
    during = [s for s in load["samples"] if t0 <= s[0] <= t1]
    windows = host_windows(record["steps"])
    return {
        "round": n, "probe": f"{before} -> {after}", "run": record["id"],
        "leader_switched_back_before": switched, "waited_for_green_s": waited,
        "patch_wall_s": round(t1 - t0, 2), "rollout_s": record["seconds"],
        "longest_out_of_rotation": longest(windows, "out_of_rotation_max_s"),
        "longest_window": longest(windows, "window_s"), "hosts": windows,
        "idle": idle,
        "under_patch": {"requests": load["requests"], "failed": load["failed"],
                        "failures": load["failures"],
                        "rps": round(load["requests"] / load["seconds"], 1),
                        "client_ran_through_patch": load["seconds"] >= t1},
        "started_during_patch": latency(during, t1 - t0),
    }


# --- afterwards ------------------------------------------------------------------------------

def restore(site: Site, t: Transport, hosts: list[str], manifest: dict | None,
            green_timeout: float) -> dict[str, Any]:
    """The probe out of the mirror and off the hosts, the leader home, the site's status: what
    was done and what was not (a failure here does not hide the run's own)."""
    repo = mirror_dir()
    for published in probes_in(repo):
        withdraw(repo, published)
    left: dict[str, Any] = {"mirror_manifest_unchanged": read_manifest(repo) == manifest}

    def probe_left_on() -> list[str]:
        for host in hosts:
            purge(t, host)
        return [h for h in hosts if installed_version(t, h)]

    for what, step in (("probe_left_on", probe_left_on),
                       ("leader_switched_back", lambda: leader_home(site, t)),
                       ("waited_for_green_s", lambda: wait_green(site, green_timeout))):
        try:
            left[what] = step()
        except (BenchError, OpsctlError, subprocess.TimeoutExpired) as exc:
            left[what] = f"failed: {exc}"
    left["leader"] = db_ops.leader_name(site, t)
    return left


# --- the report ------------------------------------------------------------------------------

def medians(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    def med(get: Callable[[dict[str, Any]], float | None]) -> float | None:
        values = [v for r in rounds if (v := get(r)) is not None]
        return round(statistics.median(values), 2) if values else None

    hosts = list(rounds[0]["hosts"]) if rounds else []
    return {
        "patch_wall_s": med(lambda r: r["patch_wall_s"]),
        "rollout_s": med(lambda r: r["rollout_s"]),
        "longest_out_of_rotation_s": med(lambda r: r["longest_out_of_rotation"]["seconds"]),
        "longest_window_s": med(lambda r: r["longest_window"]["seconds"]),
        "idle_rps": med(lambda r: r["idle"]["rps"]),
        "during_patch_rps": med(lambda r: r["started_during_patch"]["rps"]),
        "idle_p50_ms": med(lambda r: r["idle"]["p50_ms"]),
        "idle_p99_ms": med(lambda r: r["idle"]["p99_ms"]),
        "during_patch_p50_ms": med(lambda r: r["started_during_patch"]["p50_ms"]),
        "during_patch_p99_ms": med(lambda r: r["started_during_patch"]["p99_ms"]),
        "host_window_s": {h: med(lambda r, h=h: r["hosts"].get(h, {}).get("window_s"))
                          for h in hosts},
    }


def summary(report: dict[str, Any]) -> str:
    """The lines to paste into docs/BENCHMARKS.md."""
    m, rounds = report["medians"], report["rounds"]
    requests = sum(r["under_patch"]["requests"] for r in rounds)
    failed = sum(r["under_patch"]["failed"] for r in rounds)
    out = [f"{report['site']}: {len(rounds)} rolling patches of one small package ({PROBE}) on "
           f"{', '.join(report['hosts'])}; left out: {', '.join(report['left_out']) or 'none'}",
           f"failed requests      {failed} of {requests} (target 0)",
           f"patch wall time      median {m['patch_wall_s']} s "
           f"(rollout {m['rollout_s']} s; rounds: "
           f"{', '.join(str(r['patch_wall_s']) for r in rounds)} s)",
           f"out of rotation      longest: median {m['longest_out_of_rotation_s']} s (rounds: "
           + ", ".join(f"{r['longest_out_of_rotation']['host']} "
                       f"{r['longest_out_of_rotation']['seconds']} s" for r in rounds)
           + "; drained at lb1, upper bound)",
           "host windows         " + ", ".join(f"{h} {s} s" for h, s in
                                               m["host_window_s"].items()),
           f"idle                 p50 {m['idle_p50_ms']} ms, p99 {m['idle_p99_ms']} ms, "
           f"{m['idle_rps']} req/s ({report['client']})",
           f"during the patch     p50 {m['during_patch_p50_ms']} ms, "
           f"p99 {m['during_patch_p99_ms']} ms, {m['during_patch_rps']} req/s"]
    return "\n".join(out)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--site", default="reference")
    parser.add_argument("--runs", type=int, default=3, help="patch rounds")
    parser.add_argument("--requests", type=int, default=200_000,
                        help="the client's bound per round (it stops after the patch anyway)")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--baseline-seconds", type=float, default=20)
    parser.add_argument("--max-seconds", type=float, default=900,
                        help="the client's time bound per round")
    parser.add_argument("--green-timeout", type=float, default=300,
                        help="seconds to wait for `opsctl status` green before each round")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def main() -> int:
    args = parse_args()
    site = load_site(args.site)
    t = for_site(site)
    tmp = Path(tempfile.mkdtemp(prefix="bench-patch-"))
    try:
        hosts = preflight(site)
    except BenchError as exc:
        print(f"bench_patch: {exc}", file=sys.stderr)
        return 2
    manifest = read_manifest(mirror_dir())
    debs = {n: build_deb(tmp, probe_version(n)) for n in range(args.runs + 1)}
    rounds: list[dict[str, Any]] = []
    error = ""
    try:
        for host in hosts:
            done = install(t, host, debs[0])
            if done.rc != 0:
                raise BenchError(f"{host}: installing {PROBE} {probe_version(0)}: "
                                 f"{done.output}")
        for n in range(1, args.runs + 1):
            rounds.append(one_round(site, t, args, tmp, n, debs, hosts))
            print(f"round {n}: {json.dumps(rounds[-1]['longest_out_of_rotation'])}, patch "
                  f"{rounds[-1]['patch_wall_s']} s", file=sys.stderr)
    except (BenchError, OpsctlError, subprocess.TimeoutExpired) as exc:
        error = str(exc)
    finally:
        left = restore(site, t, hosts, manifest, args.green_timeout)
    report = {
        "site": site.name,
        "client": f"{args.threads} threads, keep-alive off, HTTPS GET /query/version via lb1",
        "hosts": hosts, "left_out": [h for h in site.hosts if h not in hosts],
        "rounds": rounds, "medians": medians(rounds), "afterwards": left,
        "error": error or None,
    }
    print(json.dumps(report, indent=1, ensure_ascii=False))
    if rounds:
        print(summary(report))
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(main())
