"""Scans of this machine (`opsctl check --local`) and the catalog they judge by."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from opsctl.errors import InvalidInput, Problem
from security.evaluate import TargetResult, fails_at, scan_document
from security.local import scan_this_host
from security.schema import CatalogCheck, CatalogError, load_catalog


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


def scan_local(level: int = 3) -> Scan:
    """Scan the machine this runs on: no SSH, no site."""
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    t0 = time.monotonic()
    checks = catalog(level)
    targets = [scan_this_host(checks)]
    doc = scan_document(targets, level, started, time.monotonic() - t0, len(checks))
    return Scan(targets, level, doc)
