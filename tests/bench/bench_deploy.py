"""Rolling deploys under load: failed requests, deploy time, p99 latency with and without.

    .venv/bin/python tests/bench/bench_deploy.py [--site S] [--requests 20000] [--threads 4]

On a converged lab of the site (run `opsctl up --site S` first): a bounded HTTPS load client
(tests/lab/loadgen.py, keep-alive off) in the lab's `public` namespace asks lb1 for
query-service's /version.
  baseline   the client alone for --baseline-seconds: p50/p99 latency, requests/s
  deploys    the client sends --requests requests while query-service is rolled back and
             forth between 1.0.0 and 1.1.0 over both app hosts, one deploy after another,
             for as long as it runs: failed requests (target 0), each two-host deploy's
             time, p99 of the requests that started during a deploy against the baseline's.
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

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
LOADGEN = ROOT / "tests" / "lab" / "loadgen.py"

from opsctl.deploy import engine  # noqa: E402
from opsctl.lab.plan import plan_lab  # noqa: E402
from opsctl.pki import pki_dir  # noqa: E402
from opsctl.site import load_site  # noqa: E402
from opsctl.site.model import Site  # noqa: E402


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start_load(site: Site, count: int, seconds: float, threads: int, tmp: Path,
               tag: str) -> tuple[subprocess.Popen[bytes], Path, Path]:
    """The load client started: (its process, where it writes its summary, the file whose
    appearance stops it)."""
    netns = plan_lab(site).node("public").netns
    url = f"https://{site.hosts['lb1'].address}/query/version"
    out, stop = tmp / f"{tag}.json", tmp / f"{tag}.stop"
    proc = subprocess.Popen(["ip", "netns", "exec", netns, "python3", str(LOADGEN), url,
                             "--ca", str(pki_dir(site.name) / "ca.crt"), "--count", str(count),
                             "--seconds", str(seconds), "--threads", str(threads),
                             "--stop-file", str(stop), "--out", str(out)])
    return proc, out, stop


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--site", default="reference")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--baseline-seconds", type=float, default=20)
    parser.add_argument("--max-seconds", type=float, default=600)
    args = parser.parse_args()
    site = load_site(args.site)
    tmp = Path(tempfile.mkdtemp(prefix="bench-deploy-"))

    proc, out, _ = start_load(site, 10**9, args.baseline_seconds, args.threads, tmp, "baseline")
    proc.wait(timeout=args.baseline_seconds + 60)
    base = json.loads(out.read_text())
    base_lat = [s[1] for s in base["samples"] if s[2]]

    proc, out, _ = start_load(site, args.requests, args.max_seconds, args.threads, tmp, "deploy")
    origin = time.monotonic()  # the client's own clock starts a few ms later
    time.sleep(1)
    windows: list[tuple[float, float]] = []
    deploys: list[dict] = []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    while proc.poll() is None:
        current = {r.current for r in engine.releases(site, "query-service")}
        target = "1.0.0" if current == {"1.1.0"} else "1.1.0"
        t0 = time.monotonic() - origin
        done = subprocess.run([sys.executable, "-m", "opsctl", "deploy", "query-service",
                               target, "--site", str(site.directory), "-o", "json"],
                              capture_output=True, text=True, env=env, check=False)
        t1 = time.monotonic() - origin
        if done.returncode != 0:
            print(done.stdout[-2000:], done.stderr[-2000:], file=sys.stderr)
            proc.kill()
            return 1
        windows.append((t0, t1))
        deploys.append({"to": target, "seconds": json.loads(done.stdout)["seconds"],
                        "wall": round(t1 - t0, 2)})
        time.sleep(0.5)
    load = json.loads(out.read_text())
    in_deploy = [s for s in load["samples"] if any(a <= s[0] <= b for a, b in windows)]
    dep_lat = [s[1] for s in in_deploy if s[2]]
    times = [d["seconds"] for d in deploys]
    report = {
        "site": site.name,
        "client": f"{args.threads} threads, keep-alive off, HTTPS GET /query/version via lb1",
        "baseline": {"requests": base["requests"], "failed": base["failed"],
                     "rps": round(base["requests"] / base["seconds"], 1),
                     "p50_ms": round(pct(base_lat, 0.50) * 1000, 1),
                     "p99_ms": round(pct(base_lat, 0.99) * 1000, 1)},
        "under_deploys": {"requests": load["requests"], "failed": load["failed"],
                          "failures": load["failures"], "versions": load["versions"],
                          "rps": round(load["requests"] / load["seconds"], 1),
                          "requests_started_during_a_deploy": len(in_deploy),
                          "p50_ms_during_deploy": round(pct(dep_lat, 0.50) * 1000, 1),
                          "p99_ms_during_deploy": round(pct(dep_lat, 0.99) * 1000, 1)},
        "two_host_deploys": {"count": len(deploys),
                             "median_seconds": round(statistics.median(times), 2),
                             "min_seconds": min(times), "max_seconds": max(times)},
    }
    print(json.dumps(report, indent=1, ensure_ascii=False))
    print(f"command: {' '.join(sys.argv)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
