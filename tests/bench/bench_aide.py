"""AIDE's baseline with Debian's default hashes (`H`: every hash compiled in) against the role's
`hardening_aide_checksums` (SHA-512 alone), side by side on the same files.

The aide binary and its libmhash come from opsctl's offline mirror (the .debs the hosts
install), unpacked into a temporary directory: nothing is installed on the control node. Each
round runs `aide --init` once per hash set over the same directory, in alternating order, and
the medians of wall and CPU seconds are printed with their ratio. The directory's pages are
read once before the first round, so that both sets read from the page cache.

    .venv/bin/python tests/bench/bench_aide.py --runs 5 --dir /usr/lib/python3
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from opsctl.mirror.build import mirror_dir  # noqa: E402
from opsctl.roles import role_default  # noqa: E402

DEFAULT_SET = "H"  # Debian's aide.conf: `Checksums = H`
ROLE_SET = role_default("hardening", "hardening_aide_checksums")
PACKAGES = ("aide_", "libmhash2_")


def unpack(mirror: Path, into: Path) -> Path:
    for prefix in PACKAGES:
        debs = sorted(mirror.glob(f"{prefix}*.deb"))
        if not debs:
            sys.exit(f"{mirror}: no {prefix}*.deb (run `opsctl mirror build` first)")
        subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(into)], check=True)
    return into / "usr" / "bin" / "aide"


def config(work: Path, hashes: str, directory: str) -> Path:
    path = work / f"aide-{hashes}.conf"
    path.write_text(f"database_out=file:{work}/db-{hashes}.new\ngzip_dbout=yes\n"
                    f"Checksums = {hashes}\n"
                    "StaticFile = p+u+g+ftype+n+i+s+b+l+X+m+c+Checksums\n"
                    f"{directory} StaticFile\n")
    return path


def one(aide: Path, conf: Path, libs: Path) -> tuple[float, float]:
    """(wall s, CPU s of the child) for one `aide --init`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    subprocess.run([str(aide), "--init", "--config", str(conf)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "LD_LIBRARY_PATH": str(libs)})
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", default="/usr/lib/python3")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-aide-") as tmp:
        work = Path(tmp)
        aide = unpack(mirror_dir(), work / "root")
        libs = work / "root" / "usr" / "lib" / "x86_64-linux-gnu"
        confs = {s: config(work, s, args.dir) for s in (DEFAULT_SET, ROLE_SET)}
        subprocess.run(["tar", "-cf", "/dev/null", args.dir], check=False,
                       stderr=subprocess.DEVNULL)  # warm the page cache for both
        times: dict[str, list[tuple[float, float]]] = {s: [] for s in confs}
        for run in range(args.runs):
            order = list(confs) if run % 2 == 0 else list(reversed(confs))
            for hashes in order:
                times[hashes].append(one(aide, confs[hashes], libs))
    size = subprocess.run(["du", "-sh", args.dir], capture_output=True, text=True).stdout.split()
    print(f"aide --init over {args.dir} ({size[0] if size else '?'}), {args.runs} rounds")
    for hashes, got in times.items():
        walls, cpus = [w for w, _ in got], [c for _, c in got]
        print(f"  Checksums = {hashes:<7} wall median {statistics.median(walls):6.2f} s   "
              f"CPU median {statistics.median(cpus):6.2f} s   "
              f"walls {' '.join(f'{w:.2f}' for w in walls)}")
    ratio = (statistics.median([c for _, c in times[DEFAULT_SET]])
             / statistics.median([c for _, c in times[ROLE_SET]]))
    print(f"  CPU {DEFAULT_SET} / {ROLE_SET}: {ratio:.1f}x")


if __name__ == "__main__":
    main()
