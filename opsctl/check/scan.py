"""Scans of this machine (`opsctl check --local`) and the catalog they judge by."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from opsctl.errors import InvalidInput, Problem
from security.evaluate import TargetResult, fails_at, scan_document
from security.local import scan_this_host
from security.schema import CatalogCheck, CatalogError, load_catalog
from security.units import load_units


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


def scan_local(level: int = 3, site: str | None = None) -> Scan:
    """Scan the machine this runs on: no SSH. With `site` (a name or a directory), that site's
    documented exceptions apply to this machine under its host name. Its packages are judged
    by the offline mirror's Debian security data, when this machine has the mirror."""
    from opsctl.check.exceptions import SiteExceptions, load_site_exceptions  # noqa: PLC0415
    from opsctl.mirror.build import mirror_dir  # noqa: PLC0415
    from opsctl.mirror.secdata import judge  # noqa: PLC0415
    from opsctl.site.model import load_site  # noqa: PLC0415

    exceptions = load_site_exceptions(load_site(site)) if site else SiteExceptions()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    t0 = time.monotonic()
    checks = catalog(level)
    targets = exceptions.apply([scan_this_host(checks, security=judge(mirror_dir()))])
    doc = scan_document(targets, level, started, time.monotonic() - t0, len(checks),
                        exceptions.report(targets))
    return Scan(targets, level, doc)


def unit_spec(level: int = 3) -> list[dict[str, Any]]:
    """Every test unit of the level with its steps and, per step, its checks or the evidence an
    assessor collects (security/catalog/units.yml); only level 3 has a specification."""
    if level != 3:
        raise InvalidInput([Problem("--level", str(level), "only level 3 has a unit "
                                    "specification (security/catalog/units.yml)")])
    try:
        units = load_units().units
    except CatalogError as exc:
        raise InvalidInput([Problem(p.file, p.key, p.reason) for p in exc.problems]) from None
    return [{"id": u.id, "clause": u.clause, "title_zh": u.title_zh, "title_en": u.title_en,
             "objects": list(u.objects),
             "steps": [{"examine": s.examine, "examine_en": s.examine_en,
                        "object": u.step_object(s), "checks": list(s.checks), "manual": s.manual}
                       for s in u.steps]} for u in units]
