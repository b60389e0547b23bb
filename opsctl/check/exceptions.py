"""Loading a site's documented exceptions (inventory/SITE/security/exceptions.yml).

Read once, before anything is scanned: a malformed file, an unknown check or host, or a missing
field is InvalidInput naming the file, the key and the reason (exit 2). No file: no exceptions.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import yaml

from opsctl.check.scan import catalog
from opsctl.errors import InvalidInput, Problem
from opsctl.site.model import Site
from security.evaluate import TargetResult, apply_exceptions, exception_report
from security.exceptions import EXCEPTIONS_FILE, ExceptionEntry, parse_exceptions


@dataclass(frozen=True)
class SiteExceptions:
    """A site's exceptions and the day they are judged on (an expired one does not apply)."""

    entries: tuple[ExceptionEntry, ...] = ()
    today: dt.date = field(default_factory=dt.date.today)

    def apply(self, targets: list[TargetResult]) -> list[TargetResult]:
        return [apply_exceptions(t, self.entries, self.today) for t in targets]

    def report(self, targets: list[TargetResult]) -> list[dict]:
        return exception_report(targets, self.entries, self.today)


def load_site_exceptions(site: Site, today: dt.date | None = None) -> SiteExceptions:
    path = site.directory / EXCEPTIONS_FILE
    today = today or dt.date.today()
    if not path.is_file():
        return SiteExceptions((), today)
    shown = str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput([Problem(shown, "", f"cannot read: {exc.strerror}")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        raise InvalidInput([Problem(shown, where, "not valid YAML: "
                                    + str(getattr(exc, "problem", None) or exc))]) from None
    ids = [c.id for c in catalog()]
    entries, problems = parse_exceptions(data, ids, [*site.hosts, site.name])
    if problems:
        raise InvalidInput([Problem(shown, p.key, p.reason) for p in problems])
    return SiteExceptions(tuple(entries), today)
