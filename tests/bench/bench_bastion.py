"""Through the bastion against direct, side by side on the same running lab.

`direct` is the site as the lab reaches it (root, straight to each host). `bastion` is a copy
of the same site whose connection sends every host but mon1 through mon1 (ProxyJump), as
root with the same key, so the only difference is the jump. Rounds interleave the two so
that the machine's noise hits both alike; each command runs once untimed first on each side
(control masters up, facts cached), as an operator's second command would.

    .venv/bin/python tests/bench/bench_bastion.py [--site reference] [--rounds 5]
                                                  [--apply-rounds 3]   (0: no apply)

Run as root with the site's lab up and converged (`opsctl up`).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def opsctl(*args: str) -> list[str]:
    return [sys.executable, "-m", "opsctl", *args]


def timed(cmd: list[str]) -> float:
    start = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode not in (0, 1):
        sys.exit(f"failed: {' '.join(cmd)}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.monotonic() - start


def bastion_copy(site: str, lab_key: Path) -> Path:
    directory = Path(tempfile.mkdtemp(prefix="opsctl-bench-bastion-")) / site
    shutil.copytree(ROOT / "inventory" / site, directory)
    site_file = directory / "group_vars" / "all" / "site.yml"
    data = yaml.safe_load(site_file.read_text())
    data["site"]["connection"] = {"user": "root", "identity_file": str(lab_key),
                                  "jump": {"host": "mon1"},
                                  "known_hosts": str(directory / "known_hosts")}
    site_file.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    subprocess.run(opsctl("site", "trust", str(directory), "--yes"), check=True,
                   capture_output=True, cwd=ROOT)
    return directory


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--site", default="reference")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--apply-rounds", type=int, default=3)
    args = parser.parse_args()
    from opsctl.lab.state import lab_dir

    copy = bastion_copy(args.site, lab_dir(args.site) / "ssh" / "id_ed25519")
    sides = {"direct": args.site, "bastion": str(copy)}
    commands = {
        # with the boundary probes from every host (the default), and without
        "check --site": (lambda s: opsctl("check", "--site", s), args.rounds),
        "check --no-probes": (lambda s: opsctl("check", "--site", s, "--no-probes"),
                              args.rounds),
        "jobs run log-cleanup": (lambda s: opsctl("jobs", "run", "log-cleanup", "--site", s),
                                 args.rounds),
        "no-change apply": (lambda s: opsctl("apply", "--site", s), args.apply_rounds),
    }
    for name, (make, rounds) in commands.items():
        if rounds == 0:
            continue
        for side in sides.values():
            timed(make(side))  # warm: masters, fact cache
        times: dict[str, list[float]] = {k: [] for k in sides}
        for _ in range(rounds):
            for key, side in sides.items():
                times[key].append(timed(make(side)))
        medians = {k: statistics.median(v) for k, v in times.items()}
        for key, values in times.items():
            print(f"{name:22s} {key:8s} median {medians[key]:7.2f} s   runs "
                  + " ".join(f"{v:.2f}" for v in values))
        print(f"{name:22s} bastion / direct {medians['bastion'] / medians['direct']:.2f}x")
    shutil.rmtree(copy.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
