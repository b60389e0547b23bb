"""Scans: run the collector (locally for now), evaluate the catalog, return one result."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import security
from opsctl.check.netfacts import host_context
from opsctl.errors import InvalidInput, OpsctlError, Problem
from security.evaluate import (
    TargetResult,
    evaluate_target,
    fails_at,
    scan_document,
    unreachable_target,
)
from security.schema import CatalogCheck, CatalogError, load_catalog

COLLECTOR = Path(security.__file__).resolve().parent / "collector.py"
COLLECTOR_TIMEOUT = 120


class CollectorFailed(OpsctlError):
    """The collector could not run or returned something that is not its JSON."""

    exit_code = 1


@dataclass
class Scan:
    targets: list[TargetResult]
    level: int
    document: dict[str, Any]

    def failures(self, fail_on: str) -> list[tuple[str, str]]:
        return fails_at(self.targets, fail_on)


def catalog(level: int | None = None) -> list[CatalogCheck]:
    """The validated catalog; a broken catalog becomes InvalidInput naming file, key, reason."""
    try:
        return load_catalog(level=level)
    except CatalogError as exc:
        raise InvalidInput([Problem(p.file, p.key, p.reason) for p in exc.problems]) from None


def run_collector_locally(timeout: float = COLLECTOR_TIMEOUT) -> dict[str, Any]:
    """Run the collector exactly as a host would (`python3 -`, script on stdin)."""
    try:
        proc = subprocess.run([sys.executable, "-"], input=COLLECTOR.read_text(encoding="utf-8"),
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
                   context: dict[str, Any], name: str | None = None) -> TargetResult:
    facts = dict(collected["facts"])
    facts["context"] = context
    return evaluate_target(name or collected.get("host", "localhost"), "host", checks, facts)


def scan_local(level: int = 3) -> Scan:
    """Scan the machine this runs on: no SSH, no site."""
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    t0 = time.monotonic()
    checks = catalog(level)
    try:
        collected = run_collector_locally()
        target = evaluate_facts(collected, checks, host_context(None, None))
    except CollectorFailed as exc:
        target = unreachable_target("localhost", "host", checks, str(exc))
    targets = [target]
    doc = scan_document(targets, level, started, time.monotonic() - t0, len(checks))
    return Scan(targets, level, doc)
