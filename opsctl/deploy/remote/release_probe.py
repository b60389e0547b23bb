"""Run on a host of a component by `opsctl deploy` (`python3 -c`, stdlib only): the releases
of the component that are there (newest first), the ones `current` and `previous` point at,
and whether its unit runs. Prints one JSON line; exits 0.

    release_probe.py --base /opt/COMPONENT --unit COMPONENT.service
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys


def link(base: str, name: str) -> str | None:
    """The release a symlink under BASE points at (its last path part), None without one."""
    path = os.path.join(base, name)
    return os.path.basename(os.readlink(path)) if os.path.islink(path) else None


def releases(base: str) -> list[str]:
    """The names under BASE/releases but hidden ones, the most recently switched to first (the
    switch touches a release's directory)."""
    rel = os.path.join(base, "releases")
    if not os.path.isdir(rel):
        return []
    names = [n for n in os.listdir(rel) if not n.startswith(".")]
    names.sort(key=lambda n: os.stat(os.path.join(rel, n)).st_mtime, reverse=True)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="release-probe")
    parser.add_argument("--base", required=True, help="the component's directory (/opt/NAME)")
    parser.add_argument("--unit", required=True, help="its systemd unit")
    args = parser.parse_args(argv)
    active = subprocess.run(["systemctl", "is-active", "--quiet", args.unit]).returncode == 0
    print(json.dumps({"current": link(args.base, "current"),
                      "previous": link(args.base, "previous"),
                      "releases": releases(args.base), "active": active}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
