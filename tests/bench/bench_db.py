"""Patroni on a lab: how long a planned switchover and an unplanned failover take.

Against a converged lab (db1 leading, db2 its synchronous replica), `--rounds` times:
- switchover: `opsctl db switchover` there and back; seconds until the new leader runs
  read-write (Patroni says leader, state running) and until the cluster is healthy again;
- failover: SIGKILL db1's container init (every process in it, no warning); seconds until
  Patroni on db2 reports itself leader and running; db1 is booted again and, once it follows,
  switched back.
Medians are printed; each round restores the layout.

    OPSCTL_STATE_DIR=... .venv/bin/python tests/bench/bench_db.py --site DIR --rounds 3
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import time
from pathlib import Path

from opsctl.db import ops
from opsctl.lab import lifecycle
from opsctl.lab.lifecycle import LabState
from opsctl.lab.state import lab_dir
from opsctl.site import load_site


def crash(site, host: str) -> None:
    nspawn = LabState.load(lab_dir(site.name)).pids[host]
    children = Path(f"/proc/{nspawn}/task/{nspawn}/children").read_text().split()
    os.kill(int(children[0]), signal.SIGKILL)
    lifecycle.stop_host(site.name, host)


def wait_leader(site, name: str, started: float, timeout: float = 120) -> float:
    while time.monotonic() - started < timeout:
        try:
            st = ops.status(site)
            if st.leader and st.leader.name == name and st.leader.runs:
                return time.monotonic() - started
        except Exception:  # noqa: BLE001 - a member that is down answers nothing
            pass
        time.sleep(0.5)
    raise SystemExit(f"{name} did not lead within {timeout} s")


def wait_healthy(site, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not ops.status(site).problems():
                return
        except Exception:  # noqa: BLE001
            pass
        time.sleep(2)
    raise SystemExit("cluster not healthy again")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--site", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    site = load_site(args.site)
    to_leader, to_healthy, failover = [], [], []
    for _ in range(args.rounds):
        for there in ("db2", "db1"):
            done = ops.switchover(site, to=there)
            to_leader.append(done.seconds_to_leader)
            to_healthy.append(done.seconds_to_healthy or 0.0)
        started = time.monotonic()
        crash(site, "db1")
        failover.append(wait_leader(site, "db2", started))
        lifecycle.up(site)
        wait_healthy(site)
        ops.switchover(site, to="db1")
        print(f"round: switchover {to_leader[-2:]} s, failover {failover[-1]:.1f} s", flush=True)
    print(f"switchover to new leader: median {statistics.median(to_leader):.1f} s "
          f"(n={len(to_leader)}); to healthy: median {statistics.median(to_healthy):.1f} s")
    print(f"failover (container killed) to new leader: median "
          f"{statistics.median(failover):.1f} s (n={len(failover)})")


if __name__ == "__main__":
    main()
