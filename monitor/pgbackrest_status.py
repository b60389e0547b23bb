"""Write the backup repository's state for the monitoring agent (textfile-collector style).

The agent runs unprivileged and cannot read the repository; pgBackRest's own account runs
this from a timer (role monitor_agent on the backup hosts):

    python3 -m monitor.pgbackrest_status --output /var/lib/opsctl-pgbackrest-status/status.json

It keeps only what the metrics need — per stanza its status code and the stop time of the
newest full, diff and incr backup — never the repository's configuration or keys. The file is
replaced atomically, so the agent never reads half of it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TYPES = ("full", "diff", "incr")


def condense(info: Any, now: float) -> dict[str, Any]:
    """`pgbackrest --output=json info` → {"written", "stanzas": [{name, status_code, ...}]}."""
    stanzas = []
    for raw in info if isinstance(info, list) else []:
        newest: dict[str, float] = {}
        backups = [b for b in raw.get("backup", []) if not b.get("error")]
        for backup in backups:
            kind, stop = backup.get("type"), backup.get("timestamp", {}).get("stop")
            if kind in TYPES and isinstance(stop, int | float):
                newest[kind] = max(newest.get(kind, 0.0), float(stop))
        status = raw.get("status", {})
        stanzas.append({"name": str(raw.get("name", "")),
                        "status_code": int(status.get("code", 99)),
                        "status_message": str(status.get("message", ""))[:200],
                        "backups": len(backups), "newest": newest})
    return {"written": now, "stanzas": stanzas}


def write_atomically(path: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".status-")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.chmod(tmp, 0o640)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m monitor.pgbackrest_status")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--pgbackrest", default="pgbackrest")
    args = parser.parse_args(argv)
    try:
        done = subprocess.run([args.pgbackrest, "--output=json", "info"], capture_output=True,
                              text=True, timeout=120, check=False)
        info = json.loads(done.stdout) if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError):
        info = None
    if info is None:
        print("pgbackrest_status: pgbackrest info failed; the status file says so",
              file=sys.stderr)
        data: dict[str, Any] = {"written": time.time(), "stanzas": [], "error": True}
    else:
        data = condense(info, time.time())
    write_atomically(args.output, data)
    return 0 if info is not None else 1


if __name__ == "__main__":
    sys.exit(main())
