"""Debian's security data in the offline mirror: fetched when the mirror is built, carried with
it (`mirror push`, or by hand to an air-gapped control node), read by `opsctl check`.

Edge: `fetch` reads the security tracker's JSON from a URL or a file (gzip or not); `gather`
reduces it to the bookworm-only document (security/debsec.py) or says why it could not;
`store` and `keep` put the document, or the previous one, into a repository directory;
`read_header` and `judge` read it back for `mirror show` and for a scan.
"""

from __future__ import annotations

import contextlib
import email.utils
import gzip
import http.client
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from security.debsec import (
    TRACKER_URL,
    SecurityData,
    SecurityDataError,
    SecurityJudge,
    mirror_sources,
    reduce_tracker,
    sha256,
)
from security.local import SecurityFacts, no_security_data

DATA_FILE = "debian-security.json"
# Where `mirror build` fetches from when not told: this variable, else the source the mirror's
# data came from last time. Never the tracker unasked: a machine that builds the mirror may
# be allowed to reach Debian's archive and nothing else, and an air-gapped one nothing.
URL_ENV = "OPSCTL_SECURITY_DATA_URL"
FETCH_TIMEOUT = 30  # per socket operation: an air-gapped machine gives up soon
NO_DATA = "no Debian security data in the mirror: run opsctl mirror build"


@dataclass(frozen=True)
class Fetched:
    """What a source gave, and when it was last modified, if it says (a file's time, an HTTP
    server's Last-Modified): a copy of the JSON brought in months later is as old as it is."""

    data: bytes
    modified: datetime | None = None


Fetcher = Callable[[str], Fetched]


def default_source(repo: Path) -> str | None:
    """The source to fetch from when `--security-data` names none: $OPSCTL_SECURITY_DATA_URL,
    else the URL or file the mirror's current data came from, else none (no fetch)."""
    if os.environ.get(URL_ENV):
        return os.environ[URL_ENV]
    header = read_header(repo)
    return header["source"] if header and header.get("source") else None


NO_SOURCE = (f"no source named (give `--security-data URL|FILE` once, e.g. {TRACKER_URL}, "
             f"or set {URL_ENV})")


def fetch(source: str, timeout: float = FETCH_TIMEOUT) -> Fetched:
    """The bytes at `source`: an http(s) URL (through the machine's proxy settings), a
    `file://` URL or a path; gzip-compressed data is decompressed. With the source's
    modification time: the server's Last-Modified, or the file's."""
    modified: datetime | None = None
    if source.startswith(("http://", "https://")):
        request = urllib.request.Request(source, headers={"User-Agent": "opsctl mirror build"})
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            data = response.read()
            stamp = response.headers.get("Last-Modified")
        with contextlib.suppress(TypeError, ValueError):
            modified = email.utils.parsedate_to_datetime(stamp) if stamp else None
    else:
        path = Path(source.removeprefix("file://"))
        data = path.read_bytes()
        modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return Fetched(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data, modified)


@dataclass(frozen=True)
class Gathered:
    """A reduced document ready to store, or why there is none."""

    document: dict[str, Any] | None
    source: str
    problem: str | None = None


def gather(source: str, fetcher: Fetcher = fetch, now: datetime | None = None) -> Gathered:
    """Fetch and reduce; never raises for a source that cannot be read or is not the
    tracker's JSON: the reason is in `problem`."""
    now = now or datetime.now(UTC)
    try:
        got = fetcher(source)
        raw, modified = got.data, got.modified
        # the data is as old as its source says, never newer than now
        dated = min(now, modified) if modified and modified.tzinfo else now
        doc = reduce_tracker(json.loads(raw), fetched=dated.isoformat(timespec="seconds"),
                             source=source, digest=sha256(raw))
    except (OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
        return Gathered(None, source, f"could not fetch it: {reason}")
    except (ValueError, UnicodeDecodeError) as exc:  # JSON, gzip, or not the tracker's shape
        return Gathered(None, source, f"not the security tracker's JSON: {exc}")
    return Gathered(doc, source)


@dataclass(frozen=True)
class SecurityDataResult:
    """What a build did with the security data, in one line."""

    state: str  # fetched | kept | none
    fetched: str | None  # the date of the data the mirror now holds
    message: str


def store(repo: Path, gathered: Gathered) -> SecurityDataResult:
    """Write the gathered document into `repo` (atomically)."""
    doc = gathered.document
    assert doc is not None
    _write_atomically(repo / DATA_FILE, json.dumps(doc, separators=(",", ":"),
                                                   ensure_ascii=False))
    cves = sum(len(c) for by in doc["fixed"].values() for c in by.values())
    return SecurityDataResult("fetched", doc["fetched"],
                              f"security data: {doc['release']}, {len(doc['fixed'])} source "
                              f"packages, {cves} fixed CVEs, from {gathered.source}")


def keep(repo: Path, previous: Path | None, gathered: Gathered) -> SecurityDataResult:
    """The fetch failed: carry the previous repository's data into `repo` (when it is another
    directory) and say which date it has, or that the mirror has none."""
    old = previous / DATA_FILE if previous is not None else repo / DATA_FILE
    header = read_header(old.parent)
    if header is not None and old.parent != repo:
        shutil.copy2(old, repo / DATA_FILE)
    kept = f"kept the data fetched {header['fetched']}" if header else "the mirror has none"
    return SecurityDataResult("kept" if header else "none",
                              header["fetched"] if header else None,
                              f"security data: {gathered.source}: {gathered.problem}; {kept}")


def read_header(repo: Path) -> dict[str, Any] | None:
    """The data's release, date, source and size; None when there is none (or it is
    unreadable: `judge` says so)."""
    try:
        data = SecurityData.from_document(json.loads((repo / DATA_FILE).read_text()))
    except (OSError, ValueError):
        return None
    return {"release": data.release, "fetched": data.fetched, "source": data.source,
            "source_packages": len(data.fixed), "fixed_cves": data.cve_count}


def judge(repo: Path) -> SecurityFacts:
    """What a scan judges hosts' packages with: the mirror's security data and its Packages
    index, read once. No data (or unreadable data) makes `debian_security` an error."""
    try:
        text = (repo / DATA_FILE).read_text()
    except FileNotFoundError:
        return no_security_data(NO_DATA)
    except OSError as exc:
        return no_security_data(f"the mirror's Debian security data: {exc.strerror}")
    try:
        data = SecurityData.from_document(json.loads(text))
    except (ValueError, SecurityDataError) as exc:
        return no_security_data(f"the mirror's Debian security data is unreadable ({exc}): "
                                "run opsctl mirror build --refresh")
    try:
        index = (repo / "Packages").read_text()
    except FileNotFoundError:
        index = ""
    return SecurityJudge(data, mirror_sources(index))


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
