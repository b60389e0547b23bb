"""Cold and warm `lab up` (and `lab down`) of a site, in one run, medians.

cold = the base image is not cached (a fresh cache directory: debootstrap runs);
warm = the image is cached and the lab is down.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time


def timed(*args: str, env: dict[str, str] | None = None) -> float:
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "opsctl", *args], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--site", default="reference")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cold", action="store_true", help="also measure one cold up")
    args = parser.parse_args()
    env = dict(os.environ, OPSCTL_STATE_DIR=tempfile.mkdtemp(prefix="opsctl-bench-"))
    results: dict[str, list[float]] = {"warm up": [], "second up (no change)": [], "down": []}
    if args.cold:
        cold_env = dict(env, OPSCTL_CACHE_DIR=tempfile.mkdtemp(prefix="opsctl-bench-cache-"))
        results["cold up"] = [timed("lab", "up", "--site", args.site, env=cold_env)]
        timed("lab", "down", "--site", args.site, env=cold_env)
        subprocess.run(["rm", "-rf", cold_env["OPSCTL_CACHE_DIR"]], check=True)
    for _ in range(args.runs):
        results["warm up"].append(timed("lab", "up", "--site", args.site, env=env))
        results["second up (no change)"].append(timed("lab", "up", "--site", args.site, env=env))
        results["down"].append(timed("lab", "down", "--site", args.site, env=env))
    print(f"# {' '.join(sys.argv)}  (site {args.site}, {args.runs} runs)")
    for name, values in results.items():
        print(f"{name:24s} median {statistics.median(values):6.2f} s   "
              f"runs {' '.join(f'{v:.2f}' for v in values)}")


if __name__ == "__main__":
    main()
