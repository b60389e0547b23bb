"""Provinces' Prometheus remote_write, received and queued for the national Prometheus.

Why here and not at Prometheus itself:
- Debian's Prometheus 2.42 takes remote writes (`--web.enable-remote-write-receiver`) with
  whatever labels the sender wrote, and cannot relabel by who sent them. The national view
  must never trust a province's word for which province it is. So the gateway checks the
  province's credential (basic auth, one per province, bcrypt hashes in the config as the
  monitoring agents keep theirs) and sets `site` to that province in every series.
- Prometheus lives in the management zone, which nothing in the internet zone may reach
  beyond the mirror, time and log ports (check net_mgmt_zone_isolated). So the gateway does
  not forward: it queues each relabelled request on disk, and the management zone fetches
  the queue over the metrics port it already scrapes (monitor/national_relay.py on the
  monitoring host), as it fetches everything else.

The answer keeps Prometheus' own retry contract, which is what makes a cut line lose nothing
(the province's Prometheus keeps its WAL and resends): 204 once queued, 400 when the request
can never succeed (the sender drops it), 503 when the queue is full (the sender retries with
backoff, and its WAL keeps the data meanwhile).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from remote_write import (
    decode_write_request,
    encode_write_request,
    snappy_compress,
    snappy_decompress,
    with_site,
)

DEFAULT_MAX_QUEUE_BYTES = 256 * 1024 * 1024
_PUSH_ID = re.compile(r"^[0-9]{20}-[a-z][a-z0-9_-]{0,30}$")


@dataclass(frozen=True)
class Outcome:
    status: int
    message: str
    outcome: str  # accepted, unauthorized, bad_request, failed (the metrics' label)
    samples: int = 0


def _crypt(password: str, stored: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # noqa: PLC0415 - deprecated in 3.11, present on Debian 12's Python

    return crypt.crypt(password, stored) or ""


class PushQueue:
    """Relabelled remote-write requests waiting for the national Prometheus, one file each,
    named so that the oldest sorts first. A file appears whole (one rename) or not at all."""

    def __init__(self, directory: Path, max_bytes: int = DEFAULT_MAX_QUEUE_BYTES) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def _files(self) -> list[Path]:
        try:
            return sorted(p for p in self.directory.iterdir() if _PUSH_ID.match(p.stem)
                          and p.suffix == ".bin")
        except FileNotFoundError:
            return []

    def depth(self) -> tuple[int, int]:
        """(requests, bytes) waiting."""
        files = self._files()
        return len(files), sum(p.stat().st_size for p in files if p.exists())

    def put(self, province: str, payload: bytes) -> bool:
        """Queue one request; False when the queue is full."""
        with self._lock:
            if self.depth()[1] + len(payload) > self.max_bytes:
                return False
            self.directory.mkdir(parents=True, exist_ok=True)
            ident = f"{time.time_ns():020d}-{province}"
            tmp = self.directory / f".{ident}.tmp"
            tmp.write_bytes(payload)
            os.replace(tmp, self.directory / f"{ident}.bin")
            return True

    def oldest(self) -> tuple[str, bytes] | None:
        for path in self._files():
            try:
                return path.stem, path.read_bytes()
            except FileNotFoundError:
                continue  # taken meanwhile
        return None

    def remove(self, ident: str) -> bool:
        if not _PUSH_ID.match(ident):
            return False
        try:
            (self.directory / f"{ident}.bin").unlink()
        except FileNotFoundError:
            return False
        return True


class MetricsWrite:
    def __init__(self, users: Mapping[str, str], queue: PushQueue, label: str = "site") -> None:
        self.users = dict(users)
        self.queue = queue
        self.label = label
        # bcrypt is slow on purpose and every push carries the credential: remember the ones
        # already proven (their digest, never the password).
        self._proven: set[bytes] = set()
        self._lock = threading.Lock()

    def province(self, authorization: str | None) -> str | None:
        """The province whose credential the Authorization header carries, else None."""
        if not authorization or not authorization.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(authorization[6:], validate=True) \
                .decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        stored = self.users.get(user)
        if not stored:
            return None
        proof = hashlib.sha256(f"{user}\0{password}\0{stored}".encode()).digest()
        with self._lock:
            if proof in self._proven:
                return user
        if _crypt(password, stored) != stored:
            return None
        with self._lock:
            self._proven.add(proof)
        return user

    def receive(self, province: str, body: bytes) -> Outcome:
        """Relabel one remote-write request as the province's and queue it."""
        try:
            series = decode_write_request(snappy_decompress(body))
        except ValueError as exc:
            return Outcome(400, f"not a remote-write request: {exc}", "bad_request")
        samples = sum(len(s.samples) for s in series)
        payload = snappy_compress(encode_write_request(with_site(series, province, self.label)))
        if not self.queue.put(province, payload):
            return Outcome(503, "the national queue is full; retry later", "failed")
        return Outcome(204, "", "accepted", samples)
