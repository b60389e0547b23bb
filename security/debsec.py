"""Debian's security data for bookworm against a host's installed packages. Pure.

- `reduce_tracker`: the security tracker's JSON (https://security-tracker.debian.org/tracker/
  data/json: `{source: {CVE: {releases: {bookworm: {status, fixed_version, urgency}}}}}`) →
  the reduced, bookworm-only document the offline mirror carries (`opsctl-debsec/1`).
- `SecurityData.from_document`: that document read back; `mirror_sources`: the mirror's
  `Packages` index → the source version it carries for each binary package.
- `assess`: one host's packages (binary → source package and source version, as dpkg
  reports them) against both: every resolved CVE whose fixed version is newer than the
  installed source version, split into fixes the mirror carries and fixes it does not
  ("fix published, mirror not refreshed").
- `host_facts`: that assessment as the `debian_security` fact group the catalog reads.

Control node only (python-debian orders versions); the hosts' own scan never imports this.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cmp_to_key
from typing import Any

from security.versions import compare_versions, older, parse

FORMAT = "opsctl-debsec/1"
RELEASE = "bookworm"
TRACKER_URL = "https://security-tracker.debian.org/tracker/data/json"
# The tracker's urgencies, most pressing first ("**"/"*" marks are the tracker's notes).
URGENCIES = ("high", "medium", "low", "not yet assigned", "unimportant", "end-of-life")
URGENCY_RANK = {u: len(URGENCIES) - i for i, u in enumerate(URGENCIES)}
# How much of a finding the evidence shows: the first source packages (most urgent first)
# and the first CVE ids of each; counts say what was left out.
MAX_SOURCES = 20
MAX_CVES = 10
MAX_BINARIES = 5
# The oldest data a pass may rest on (as Grype refuses a vulnerability database older than its
# max-allowed-built-age): Debian publishes fixes every day, and a host judged against data
# older than this has fixes the data does not know of. Older data still fails a host for the
# fixes it does know; it cannot pass one.
MAX_DATA_AGE = timedelta(days=7)

Cve = tuple[str, str]  # (CVE id, urgency)


class SecurityDataError(ValueError):
    """Not the security tracker's JSON, or not a reduced document this code reads."""


def _urgency(value: object) -> str:
    text = str(value or "not yet assigned").strip().rstrip("*").strip().lower()
    return text if text in URGENCY_RANK else "not yet assigned"


def reduce_tracker(raw: object, *, fetched: str, source: str, digest: str = "",
                   release: str = RELEASE) -> dict[str, Any]:
    """The tracker's JSON → the reduced document for `release`.

    `fixed`: {source package: {fixed version: [[CVE, urgency], ...]}} for every resolved CVE
    with a real fixed version ("0" means the release was never affected: left out);
    `open`: {source package: [[CVE, urgency], ...]} for open and undetermined ones (no fix in
    the release yet). Fixed versions that are not Debian versions are left out and counted.
    """
    if not isinstance(raw, dict) or not raw:
        raise SecurityDataError("not the security tracker's JSON: expected an object of "
                                "source packages")
    fixed: dict[str, dict[str, list[list[str]]]] = {}
    open_: dict[str, list[list[str]]] = {}
    entries = skipped = 0
    for src, cves in raw.items():
        if not isinstance(cves, dict):
            continue
        for cve, entry in cves.items():
            rel = ((entry or {}).get("releases") or {}).get(release) \
                if isinstance(entry, dict) else None
            if not isinstance(rel, dict):
                continue
            entries += 1
            status, urgency = rel.get("status"), _urgency(rel.get("urgency"))
            if status == "resolved":
                version = str(rel.get("fixed_version") or "").strip()
                if not version or version == "0":
                    continue
                try:
                    parse(version)
                except ValueError:
                    skipped += 1
                    continue
                fixed.setdefault(src, {}).setdefault(version, []).append([cve, urgency])
            elif status in ("open", "undetermined"):
                open_.setdefault(src, []).append([cve, urgency])
    if not entries:
        raise SecurityDataError(f"the security tracker's JSON has no {release} entries")
    return {
        "format": FORMAT, "release": release, "fetched": fetched, "source": source,
        "sha256": digest, "skipped_versions": skipped,
        "fixed": {s: {v: sorted(c) for v, c in sorted(by.items())}
                  for s, by in sorted(fixed.items())},
        "open": {s: sorted(c) for s, c in sorted(open_.items())},
    }


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class SecurityData:
    """The reduced document, ready to judge hosts by."""

    release: str
    fetched: str
    source: str
    fixed: Mapping[str, Mapping[str, tuple[Cve, ...]]]
    open: Mapping[str, tuple[Cve, ...]]
    _newest: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_document(cls, doc: object) -> SecurityData:
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise SecurityDataError(f"not an {FORMAT} document")
        try:
            fixed = {s: {v: tuple((c, u) for c, u in cves) for v, cves in by.items()}
                     for s, by in doc["fixed"].items()}
            open_ = {s: tuple((c, u) for c, u in cves) for s, cves in doc["open"].items()}
            return cls(str(doc["release"]), str(doc["fetched"]), str(doc["source"]),
                       fixed, open_)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SecurityDataError(f"{FORMAT} document is malformed: {exc}") from None

    @property
    def cve_count(self) -> int:
        return sum(len(c) for by in self.fixed.values() for c in by.values())

    def summary(self) -> str:
        return (f"Debian security tracker, {self.release}, fetched {self.fetched} "
                f"({len(self.fixed)} source packages, {self.cve_count} fixed CVEs)")

    def age(self, now: datetime) -> timedelta | None:
        """How old the data is at `now`; None when its date cannot be read."""
        try:
            fetched = datetime.fromisoformat(self.fetched)
        except ValueError:
            return None
        if fetched.tzinfo is None:
            fetched = fetched.replace(tzinfo=UTC)
        return now - fetched

    def newest_fix(self, source: str) -> str:
        """The highest fixed version of a source package (cached: hosts share sources)."""
        newest = self._newest.get(source)
        if newest is None:
            newest = _highest(self.fixed[source])
            self._newest[source] = newest
        return newest


def _highest(versions: Iterable[str]) -> str:
    return max(versions, key=cmp_to_key(compare_versions))


# ---------------------------------------------------------------- the mirror's index

def mirror_sources(packages_index: str) -> dict[str, str]:
    """A `Packages` index → {binary package: the newest source version the mirror carries}.

    A stanza's `Source: NAME (VERSION)` gives the source version (binNMUs); `Source: NAME`
    or none means the binary's own version, as dpkg reads it."""
    out: dict[str, str] = {}
    for stanza in packages_index.split("\n\n"):
        name = version = src_version = ""
        for line in stanza.splitlines():
            if line.startswith("Package:"):
                name = line[8:].strip()
            elif line.startswith("Version:"):
                version = line[8:].strip()
            elif line.startswith("Source:") and "(" in line:
                src_version = line.split("(", 1)[1].rstrip(") \t")
        carried = src_version or version
        if name and carried:
            prev = out.get(name)
            if prev is None or older(prev, carried):
                out[name] = carried
    return out


# ---------------------------------------------------------------- judging a host

@dataclass(frozen=True)
class Finding:
    """One installed source package (at one version) older than published fixes."""

    source: str
    version: str  # the installed source version
    binaries: tuple[str, ...]
    fixed: str  # the version that fixes every CVE listed
    cves: tuple[Cve, ...]  # most urgent first
    mirror: str | None  # source version the mirror carries for these binaries; None: not all
    missing_from_mirror: tuple[str, ...] = ()  # binaries the mirror does not carry at all

    @property
    def urgency(self) -> str:
        return self.cves[0][1] if self.cves else "not yet assigned"

    def line(self, in_mirror: bool) -> str:
        bins = ", ".join(self.binaries[:MAX_BINARIES])
        if len(self.binaries) > MAX_BINARIES:
            bins += f", +{len(self.binaries) - MAX_BINARIES} more"
        ids = ", ".join(c for c, _ in self.cves[:MAX_CVES])
        if len(self.cves) > MAX_CVES:
            ids += f", +{len(self.cves) - MAX_CVES} more"
        if in_mirror:
            where = f"fixed in {self.fixed}, the mirror has {self.mirror}"
        elif self.missing_from_mirror:
            where = (f"fix published in {self.fixed}, the mirror does not carry "
                     f"{', '.join(self.missing_from_mirror)}")
        else:
            where = (f"fix published in {self.fixed}, mirror not refreshed "
                     f"(it has {self.mirror})")
        return (f"{self.source} {self.version} ({bins}): {where}: {len(self.cves)} "
                f"CVE{'s' if len(self.cves) != 1 else ''}, urgency {self.urgency}: {ids}")


@dataclass(frozen=True)
class Assessment:
    fixed_in_mirror: tuple[Finding, ...]
    fix_not_in_mirror: tuple[Finding, ...]
    binaries: int
    sources: int
    open_cves: int


def installed_sources(packages: Mapping[str, Any]) -> dict[tuple[str, str], list[str]]:
    """(source package, source version) → its installed binary packages. A binary without a
    source entry is its own source at its own version (dpkg's rule when Source is absent)."""
    installed = packages.get("installed") or {}
    sources = packages.get("sources") or {}
    out: dict[tuple[str, str], list[str]] = {}
    for binary, version in installed.items():
        src = sources.get(binary)
        key = (str(src[0]), str(src[1])) if src else (binary, str(version))
        out.setdefault(key, []).append(binary)
    return out


def _rank(cves: Iterable[Cve]) -> tuple[Cve, ...]:
    return tuple(sorted(cves, key=lambda c: (-URGENCY_RANK.get(c[1], 0), c[0])))


def _finding(source: str, version: str, binaries: list[str], fixes: list[tuple[str, tuple]],
             mirror: str | None, missing: tuple[str, ...]) -> Finding:
    cves = _rank(c for _, group in fixes for c in group)
    return Finding(source, version, tuple(sorted(binaries)), _highest(v for v, _ in fixes),
                   cves, mirror, missing)


def assess(packages: Mapping[str, Any], data: SecurityData,
           mirror: Mapping[str, str]) -> Assessment:
    """Every resolved CVE of `data` whose fix is newer than what the host runs, by source
    package: those the mirror carries a fix for (the mirror's source version for every
    installed binary of the source is at least the fixed version), and those it does not."""
    groups = installed_sources(packages)
    in_mirror: list[Finding] = []
    not_in_mirror: list[Finding] = []
    open_cves = 0
    for (source, version), binaries in groups.items():
        open_cves += len(data.open.get(source, ()))
        fixes = data.fixed.get(source)
        if not fixes or not older(version, data.newest_fix(source)):
            continue
        missing = tuple(sorted(b for b in binaries if b not in mirror))
        carried = [mirror[b] for b in binaries if b in mirror]
        lowest = None if missing or not carried else \
            min(carried, key=cmp_to_key(compare_versions))
        here: list[tuple[str, tuple]] = []
        absent: list[tuple[str, tuple]] = []
        for fixed, cves in fixes.items():
            if older(version, fixed):
                ok = lowest is not None and not older(lowest, fixed)
                (here if ok else absent).append((fixed, cves))
        mirror_version = lowest if lowest is not None else (
            min(carried, key=cmp_to_key(compare_versions)) if carried else None)
        if here:
            in_mirror.append(_finding(source, version, binaries, here, mirror_version, ()))
        if absent:
            not_in_mirror.append(_finding(source, version, binaries, absent, mirror_version,
                                          missing))
    return Assessment(_ordered(in_mirror), _ordered(not_in_mirror),
                      sum(len(b) for b in groups.values()), len(groups), open_cves)


def fixed_between(data: SecurityData, source: str, before: str, after: str) -> tuple[Cve, ...]:
    """The resolved CVEs of `source` an upgrade from source version `before` to `after` fixes:
    those whose fixed version is newer than `before` and at most `after` (`opsctl patch`)."""
    found = [c for fixed, cves in (data.fixed.get(source) or {}).items()
             if older(before, fixed) and not older(after, fixed) for c in cves]
    return _rank(set(found))


def _ordered(findings: list[Finding]) -> tuple[Finding, ...]:
    return tuple(sorted(findings, key=lambda f: (-URGENCY_RANK.get(f.urgency, 0),
                                                 -len(f.cves), f.source)))


def bounded_lines(findings: tuple[Finding, ...], in_mirror: bool) -> list[str]:
    """One line per source package, the first MAX_SOURCES, then one line counting the rest."""
    lines = [f.line(in_mirror) for f in findings[:MAX_SOURCES]]
    rest = findings[MAX_SOURCES:]
    if rest:
        lines.append(f"… {len(rest)} more source packages, "
                     f"{sum(len(f.cves) for f in rest)} CVEs")
    return lines


def too_old(data: SecurityData, now: datetime) -> str | None:
    """Why the data is too old for a pass (MAX_DATA_AGE), or None."""
    age = data.age(now)
    if age is None:
        return f"its date ({data.fetched!r}) cannot be read"
    if age > MAX_DATA_AGE:
        return (f"it was fetched {age.days} days ago, and a pass rests on data at most "
                f"{MAX_DATA_AGE.days} days old: fixes Debian published since are not in it")
    return None


def host_facts(packages: object, data: SecurityData, mirror: Mapping[str, str],
               now: datetime) -> dict:
    """The `debian_security` fact group of one host (security/facts.py), judged at `now`
    (the scan's time)."""
    if not isinstance(packages, dict):
        return {"error": "packages were not collected"}
    if set(packages) == {"error"}:
        return {"error": f"packages: {packages['error']}"}
    found = assess(packages, data, mirror)
    old = too_old(data, now)
    if old and not (found.fixed_in_mirror or found.fix_not_in_mirror):
        return {"error": f"{data.summary()}: {old}; run opsctl mirror build --refresh "
                         "(on a machine that reaches the tracker, or with the file brought in) "
                         "and opsctl mirror push"}
    checked = (f"{found.binaries} installed packages from {found.sources} source packages; "
               f"{found.open_cves} CVEs open in {data.release} without a fix yet")
    return {
        "data": data.summary() + (f" ({old})" if old else ""),
        "checked": checked,
        "fixed_in_mirror": bounded_lines(found.fixed_in_mirror, True),
        "fix_not_in_mirror": bounded_lines(found.fix_not_in_mirror, False),
        "counts": {
            "fixed_in_mirror_sources": len(found.fixed_in_mirror),
            "fixed_in_mirror_cves": sum(len(f.cves) for f in found.fixed_in_mirror),
            "fix_not_in_mirror_sources": len(found.fix_not_in_mirror),
            "fix_not_in_mirror_cves": sum(len(f.cves) for f in found.fix_not_in_mirror),
            "open_cves": found.open_cves,
        },
    }


@dataclass(frozen=True)
class SecurityJudge:
    """What the scanner hands the evaluation of every host: the data and the mirror's index,
    read once per scan, and the scan's time (the data's age is judged at it). Called with a
    host's `packages` facts, it returns `debian_security`."""

    data: SecurityData
    mirror: Mapping[str, str]
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self, packages: object) -> dict:
        return host_facts(packages, self.data, self.mirror, self.now)
