"""Write the AIDE daily check's outcome for the monitoring agent (textfile-collector style).

AIDE's daily check (Debian's dailyaidecheck, as the `_aide` account) writes its report to
/var/log/aide/aide.log (group adm) and mails it to root, which on a host without a mail
transport goes nowhere. The agent runs unprivileged and may read neither the log nor the
baseline; a timer of the monitor_agent role runs this as root:

    python3 -m monitor.aide_status --output /var/lib/opsctl-aide-status/status.json

It keeps only counts and times: when the baseline was made, when the last check finished, its
exit code and how many entries it found added, removed and changed. Never the paths: they stay
in the log, for whoever reviews the finding. The file is replaced atomically.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any

from monitor.pgbackrest_status import write_atomically

LOG = Path("/var/log/aide/aide.log")
BASELINE = Path("/var/lib/aide/aide.db")
CHANGES = ("added", "removed", "changed")

# dailyaidecheck's own line, framed in stars for errors (its frame drops the first character of
# a long line, hence no "A"); AIDE's summary lines ("  Added entries:\t\t3").
_EXIT = re.compile(r"IDE returned with (?:exit code (\d+)|a (zero) exit code)\.")
_COUNT = re.compile(r"^\s*(Added|Removed|Changed) entries:\s*(\d+)\s*$", re.MULTILINE)
_NO_DIFFERENCES = "AIDE found NO differences between database and filesystem"


def parse_report(text: str) -> dict[str, Any]:
    """The last daily check's exit code (None when it did not get that far) and counts."""
    exits = _EXIT.findall(text)
    exit_code = (0 if exits[-1][1] else int(exits[-1][0])) if exits else None
    counts = dict.fromkeys(CHANGES, 0)
    for kind, number in _COUNT.findall(text):
        counts[kind.lower()] = int(number)
    if exit_code is not None and 0 < exit_code < 8 and not any(counts.values()) \
            and _NO_DIFFERENCES not in text:
        # AIDE said it found something, but the summary was not in the log (truncated): the
        # bits of its exit code still say which kinds (1 added, 2 removed, 4 changed).
        bits = zip(CHANGES, (1, 2, 4), strict=True)
        counts = {kind: 1 if exit_code & bit else 0 for kind, bit in bits}
    return {"exit_code": exit_code, **counts}


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def condense(log: Path, baseline: Path, now: float) -> dict[str, Any]:
    data: dict[str, Any] = {"written": now, "baseline": _mtime(baseline), "check": None}
    finished = _mtime(log)
    if finished is not None:
        try:
            text = log.read_text(errors="replace")
        except OSError:
            text = ""
        data["check"] = {"finished": finished, **parse_report(text)}
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m monitor.aide_status")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--log", type=Path, default=LOG)
    parser.add_argument("--baseline", type=Path, default=BASELINE)
    args = parser.parse_args(argv)
    data = condense(args.log, args.baseline, time.time())
    write_atomically(args.output, data)  # 0640; the directory's group (setgid): the agent's
    return 0


if __name__ == "__main__":
    sys.exit(main())
