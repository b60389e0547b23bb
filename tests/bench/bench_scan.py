"""The compliance scan's own speed: one host and the whole fleet, interleaved, on a
converged lab of the site (`opsctl up --site S` first). OpenSCAP and Lynis beside it are
bench_check.py's job; this is the quick figure to rerun when the catalog grows.

    .venv/bin/python tests/bench/bench_scan.py --site reference --host db1 --runs 5
    .venv/bin/python tests/bench/bench_scan.py --against /work/wt-before   # side by side

`--against DIR` runs the same scans from another checkout (`git worktree add DIR COMMIT`)
interleaved with this one's, so a change is judged on the same machine in the same minutes.
Python writes bytecode as a user's installation has it (PYTHONDONTWRITEBYTECODE unset).

Each run is the CLI as a user types it (start-up included); `scan s` is the document's own
`seconds` (collection and evaluation, after start-up). The fleet runs with and without the
boundary probes (`--no-probes`: the figure the catalog's own cost is compared by).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def scan(site: str, limit: str | None, probes: bool = True,
         checkout: Path | None = None) -> tuple[float, float, int]:
    argv = [sys.executable, "-m", "opsctl", "check", "--site", site, "--format", "json"]
    argv += ["--limit", limit] if limit else []
    argv += [] if probes else ["--no-probes"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    # `-m` puts the working directory first on sys.path: run in the checkout that is meant
    where = checkout or ROOT
    env |= {"PYTHONPATH": str(where), "OPSCTL_ROOT": str(where)}
    t0 = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False,
                          env=env, cwd=where)
    wall = time.monotonic() - t0
    if done.returncode not in (0, 1):
        raise SystemExit(f"opsctl check failed ({done.returncode}): {done.stderr.strip()}")
    doc = json.loads(done.stdout)
    return wall, float(doc["seconds"]), int(doc["checks_evaluated"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", default="reference")
    parser.add_argument("--host", default="db1")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--against", type=Path, help="another checkout, run interleaved")
    args = parser.parse_args()
    checkouts: list[tuple[str, Path | None]] = [("", None)]
    if args.against:
        checkouts = [("this: ", None), ("against: ", args.against)]
    results: dict[str, list[tuple[float, float, int]]] = {}
    for _label, checkout in checkouts:  # warm: bytecode, kept files, SSH master connections
        scan(args.site, args.host, checkout=checkout)
    for _ in range(args.runs):
        for label, checkout in checkouts:
            for name, limit, probes in (("host", args.host, True),
                                        ("fleet, --no-probes", None, False),
                                        ("fleet, probes", None, True)):
                results.setdefault(label + name, []).append(
                    scan(args.site, limit, probes, checkout))
    for name, rows in results.items():
        walls = [r[0] for r in rows]
        print(f"{name:27} median wall {statistics.median(walls):.2f} s "
              f"({' '.join(f'{w:.2f}' for w in walls)}), scan s "
              f"{statistics.median(r[1] for r in rows):.2f}, checks evaluated {rows[0][2]}")


if __name__ == "__main__":
    main()
