"""The append-only, hash-chained audit log of every action that changes something.

Each record is one JSON line holding the previous record's hash; a record's hash
covers its own fields and that link, so editing, removing or reordering any record
breaks the chain from there on and `verify` names the first record that no longer fits.
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsctl.paths import ensure_private_dir, state_dir

GENESIS = "0" * 64


def log_path() -> Path:
    return state_dir() / "audit.log"


def actor() -> str:
    """Who: the login behind sudo if there is one, and the machine."""
    user = os.environ.get("SUDO_USER") or getpass.getuser()
    return f"{user}@{socket.gethostname()}"


def _digest(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@contextmanager
def _locked(path: Path) -> Iterator[Any]:
    ensure_private_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield handle
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def append(action: str, args: dict[str, Any], result: str, path: Path | None = None) -> dict:
    """Append one record; the lock keeps concurrent opsctl processes from forking the chain."""
    path = path or log_path()
    with _locked(path) as handle:
        handle.seek(0)
        last = None
        for line in handle:
            if line.strip():
                last = line
        prev = json.loads(last) if last else None
        record: dict[str, Any] = {
            "seq": (prev["seq"] + 1) if prev else 1,
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "actor": actor(),
            "action": action,
            "args": args,
            "result": result,
            "prev": prev["hash"] if prev else GENESIS,
        }
        record["hash"] = _digest(record)
        handle.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return record


@dataclass(frozen=True)
class Verdict:
    ok: bool
    records: int
    first_bad: int | None = None  # line number (1-based) of the first record that fails
    reason: str = ""


def verify(path: Path | None = None) -> Verdict:
    """Walk the chain; report the first line whose content, link or sequence does not fit."""
    path = path or log_path()
    if not path.exists():
        return Verdict(True, 0)
    prev_hash, expected_seq, count = GENESIS, 1, 0
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                return Verdict(False, count, lineno, "blank line inside the log")
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                return Verdict(False, count, lineno, "not a JSON record")
            if not isinstance(record, dict) or "hash" not in record:
                return Verdict(False, count, lineno, "record has no hash")
            if record.get("prev") != prev_hash:
                return Verdict(False, count, lineno, "does not link to the record before it")
            if record.get("seq") != expected_seq:
                return Verdict(False, count, lineno,
                               f"sequence {record.get('seq')} where {expected_seq} was expected")
            if _digest(record) != record["hash"]:
                return Verdict(False, count, lineno, "content does not match its hash (edited)")
            prev_hash, expected_seq, count = record["hash"], expected_seq + 1, count + 1
    return Verdict(True, count)


def records(path: Path | None = None) -> list[dict[str, Any]]:
    path = path or log_path()
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
