"""Write the AIDE daily check's outcome for the monitoring agent (textfile-collector style).

AIDE's daily check (Debian's dailyaidecheck, as the `_aide` account) writes its report to
/var/log/aide/aide.log (group adm) and mails it to root, which on a host without a mail
transport goes nowhere. The agent runs unprivileged and may read neither the log nor the
baseline; a timer of the monitor_agent role runs this as root:

    python3 -m monitor.aide_status --output /var/lib/opsctl-aide-status/status.json

It keeps only counts and times: when the baseline was made, when the last check finished, its
exit code and how many entries it found added, removed and changed. Never the paths: they stay
in the log, for whoever reviews the finding. The file is replaced atomically.

The parsing here is the one reading of AIDE's plain report, for this timer on the hosts and for
the control node (`opsctl aide report` reads the same log, `opsctl aide accept` the report of
`aide --update`): `parse_report` for the daily check's outcome, `parse_counts` for AIDE's
summary, `parse_entries` for the paths listed and how each changed. Pure, standard library only.
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
# AIDE's section headline (a line of dashes, the title, dashes): the entry lists are titled
# "Added entries", ... or, with report_grouped=no, "Added and changed entries" and the like.
_TITLE = re.compile(r"^([A-Z][^:]*):$")
_ENTRY_LIST = re.compile(r"^(Added|Removed|Changed)(,? (and )?(added|removed|changed))* entries$")
# One entry: with report_summarize_changes (Debian's default) the summary string, then the path
# ("f++++++++++++++++: /usr/sbin/x", "f   ...    .C.. . : /etc/x"; the summary never holds a
# "/"); without it the kind in words ("changed: /etc/x").
_ENTRY = re.compile(r"^(?P<summary>[^/]+?): (?P<path>/.*)$")
_WORDS = {"added": "added", "removed": "removed", "changed": "changed"}
# dailyaidecheck's copy of what AIDE wrote to stderr ("AIDE error output (1 lines):").
_ERROR_OUTPUT = re.compile(r"^AIDE error output \(\d+ lines?\):\n(.+)$", re.MULTILINE)
_START = re.compile(r"^Start timestamp: (.+?) \(AIDE ([^)]+)\)\s*$", re.MULTILINE)


def parse_report(text: str) -> dict[str, Any]:
    """The last daily check's exit code (None when it did not get that far) and counts."""
    exits = _EXIT.findall(text)
    exit_code = (0 if exits[-1][1] else int(exits[-1][0])) if exits else None
    return {"exit_code": exit_code, **parse_counts(text, exit_code)}


def parse_counts(text: str, exit_code: int | None) -> dict[str, int]:
    """AIDE's summary: how many entries it found added, removed and changed (its exit code's
    bits when the summary is missing from `text`)."""
    counts = dict.fromkeys(CHANGES, 0)
    for kind, number in _COUNT.findall(text):
        counts[kind.lower()] = int(number)
    if exit_code is not None and 0 < exit_code < 8 and not any(counts.values()) \
            and _NO_DIFFERENCES not in text:
        # AIDE said it found something, but the summary was not in the log (truncated): the
        # bits of its exit code still say which kinds (1 added, 2 removed, 4 changed).
        bits = zip(CHANGES, (1, 2, 4), strict=True)
        counts = {kind: 1 if exit_code & bit else 0 for kind, bit in bits}
    return counts


def _kind(summary: str, listed_as: str | None) -> str | None:
    """added, removed or changed: the list's own title when it holds one kind, else the
    summary string (an added entry's is its type and then all "+", a removed one's all "-")."""
    if listed_as:
        return listed_as
    word = _WORDS.get(summary.strip())
    if word:
        return word
    rest = summary[1:].strip()
    if rest and set(rest) == {"+"}:
        return "added"
    if rest and set(rest) == {"-"}:
        return "removed"
    return "changed"


def parse_entries(text: str) -> list[dict[str, str]]:
    """Every entry AIDE's report lists, in its order: {"path", "change" (added, removed or
    changed), "summary" (AIDE's summary string: which attributes changed)}. Only the entry
    lists are read (the detailed section's "File: /x" lines are not entries)."""
    entries: list[dict[str, str]] = []
    listing: str | None = None  # the list being read: a kind, "" (mixed) or None (not a list)
    for line in text.splitlines():
        title = _TITLE.match(line)
        if title:
            name = title.group(1)
            if _ENTRY_LIST.match(name):
                kinds = re.findall(r"(?i)added|removed|changed", name)
                listing = kinds[0].lower() if len(kinds) == 1 else ""
            else:
                listing = None
            continue
        if listing is None or line.startswith("End of AIDE output"):
            listing = None
            continue
        entry = _ENTRY.match(line)
        if entry:
            summary = entry.group("summary")
            entries.append({"path": entry.group("path"),
                            "change": _kind(summary, listing or None),
                            "summary": summary})
    return entries


def parse_error(text: str) -> str | None:
    """The first line AIDE wrote to stderr, as the daily check's log keeps it."""
    found = _ERROR_OUTPUT.search(text)
    return found.group(1).strip() if found else None


def parse_start(text: str) -> str | None:
    """When AIDE started the (last) run the text reports, as AIDE wrote it."""
    starts = _START.findall(text)
    return starts[-1][0] if starts else None


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
