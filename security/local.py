"""Scanning the machine this runs on: the collector as a child process, then evaluation.

`opsctl check --local` and the scheduled `compliance-scan` job on each host both come here, so
a host's own daily scan and the control node's `opsctl check --site` judge the same facts by
the same catalog. Only the standard library, PyYAML and pydantic: no opsctl.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from security.collector.bundle import collector_script
from security.evaluate import TargetResult, evaluate_target, unreachable_target
from security.schema import CatalogCheck

COLLECTOR_TIMEOUT = 120

# What the site says about a host when there is no site (an assessor's single server).
NO_SITE_CONTEXT: dict[str, Any] = {"site": None, "zone": None, "groups": [],
                                   "allowed_tcp_ports": None, "management_cidrs": [],
                                   "backup_repository_hosts": []}


# Judges a host's `packages` facts against Debian's security data: returns the
# `debian_security` fact group (security.debsec.SecurityJudge on the control node).
SecurityFacts = Callable[[Any], dict[str, Any]]
# A host's own scan has no security data: the control node's `opsctl check --site` judges it.
NO_SECURITY_DATA_HERE = ("no Debian security data on this machine: the control node judges "
                         "known vulnerabilities (opsctl check --site)")


def no_security_data(reason: str = NO_SECURITY_DATA_HERE) -> SecurityFacts:
    """The `debian_security` facts when there is no data to judge by: an error, never a pass."""
    return lambda _packages: {"error": reason}


class CollectorFailed(Exception):
    """The collector could not run or returned something that is not its JSON."""


def run_collector_locally(timeout: float = COLLECTOR_TIMEOUT) -> dict[str, Any]:
    """Run the collector exactly as a host would (`python3 -`, script on stdin)."""
    try:
        proc = subprocess.run([sys.executable, "-"], input=collector_script(),
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise CollectorFailed(f"the collector took longer than {timeout:g}s") from None
    return parse_collector_output(proc.returncode, proc.stdout, proc.stderr)


def parse_collector_output(returncode: int, stdout: str, stderr: str) -> dict[str, Any]:
    if returncode != 0:
        tail = stderr.strip().splitlines()[-1:] or [f"exit status {returncode}"]
        raise CollectorFailed(f"the collector failed: {tail[0]}")
    try:
        doc = json.loads(stdout)
    except json.JSONDecodeError as exc:
        raise CollectorFailed(f"the collector's output is not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema") != "opsctl-facts/1":
        raise CollectorFailed("the collector's output is not an opsctl-facts/1 document")
    return doc


def evaluate_facts(collected: dict[str, Any], checks: list[CatalogCheck],
                   context: dict[str, Any], name: str | None = None,
                   security: SecurityFacts | None = None) -> TargetResult:
    """The collected facts, plus what the scanner adds (`context` from the site,
    `debian_security` from the security data), judged by the catalog."""
    facts = dict(collected["facts"])
    facts["context"] = context
    facts["debian_security"] = (security or no_security_data())(facts.get("packages"))
    return evaluate_target(name or collected.get("host", "localhost"), "host", checks, facts)


def scan_this_host(checks: list[CatalogCheck], context: dict[str, Any] | None = None,
                   name: str | None = None,
                   security: SecurityFacts | None = None) -> TargetResult:
    """Collect and evaluate here; a collector that fails makes every check `error`."""
    return scan_this_host_with_facts(checks, context, name, security)[0]


def scan_this_host_with_facts(
        checks: list[CatalogCheck], context: dict[str, Any] | None = None,
        name: str | None = None, security: SecurityFacts | None = None,
) -> tuple[TargetResult, dict[str, Any]]:
    """scan_this_host's result and the facts it collected (empty when the collector failed)."""
    try:
        collected = run_collector_locally()
    except CollectorFailed as exc:
        return unreachable_target(name or "localhost", "host", checks, str(exc)), {}
    return (evaluate_facts(collected, checks, context or NO_SITE_CONTEXT, name=name,
                           security=security), collected.get("facts", {}))


EPOCH_DAY = 86400


def password_expiry(facts: dict[str, Any]) -> dict[str, float]:
    """Each account's password expiry as Unix time, from the collector's derived days (no
    hash, no date of change): the monitor alerts before the admin is locked out."""
    accounts = facts.get("accounts")
    days = accounts.get("password_expires") if isinstance(accounts, dict) else None
    if not isinstance(days, dict):
        return {}
    return {name: float(day) * EPOCH_DAY for name, day in sorted(days.items())
            if isinstance(day, int)}


def monitor_summary(target: TargetResult, level: int, finished: float,
                    facts: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the monitoring agent reads (monitor/collectors/compliance.py): counts by result,
    when, which checks failed (ids only: evidence stays in `opsctl check` reports), and when
    each account's password expires."""
    return {"finished": finished, "level": level, "host": target.name,
            "counts": target.counts(), "error": target.error,
            "failed": sorted(r.id for r in target.results if r.status == "fail"),
            "major_risks": target.major_risks,
            "password_expiry": password_expiry(facts or {})}


def write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    """Readers (the monitoring agent) see the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
