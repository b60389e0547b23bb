"""pgBackRest's `info --output=json`, read into our own types (pure: text in, objects out)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from opsctl.errors import OpsctlError


class InfoUnreadable(OpsctlError):
    """pgBackRest's info output was not what we expect."""

    exit_code = 1


@dataclass(frozen=True)
class Backup:
    label: str
    type: str  # full | diff | incr
    started: datetime
    stopped: datetime
    size: int  # bytes of the database this backup stands for
    delta: int  # bytes this backup copied
    repo_size: int  # bytes in the repository for the whole set (compressed, encrypted)
    repo_delta: int  # bytes this backup added to the repository
    wal_start: str
    wal_stop: str
    prior: str | None
    error: bool

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "type": self.type,
                "started": self.started.isoformat(), "stopped": self.stopped.isoformat(),
                "seconds": int((self.stopped - self.started).total_seconds()),
                "size": self.size, "delta": self.delta,
                "repo_size": self.repo_size, "repo_delta": self.repo_delta,
                "wal_start": self.wal_start, "wal_stop": self.wal_stop,
                "prior": self.prior, "error": self.error}


@dataclass(frozen=True)
class Stanza:
    name: str
    status_code: int
    status: str
    cipher: str
    backups: list[Backup] = field(default_factory=list)
    wal_min: str | None = None
    wal_max: str | None = None
    # pgBackRest holds the stanza's backup lock: a backup (or expire) is running now
    backup_running: bool = False

    @property
    def ok(self) -> bool:
        return self.status_code == 0

    @property
    def newest(self) -> Backup | None:
        return max(self.backups, key=lambda b: b.stopped, default=None)

    @property
    def oldest(self) -> Backup | None:
        return min(self.backups, key=lambda b: b.stopped, default=None)

    def as_dict(self) -> dict[str, Any]:
        return {"stanza": self.name, "status": self.status, "status_code": self.status_code,
                "cipher": self.cipher, "backup_running": self.backup_running,
                "wal_min": self.wal_min, "wal_max": self.wal_max,
                "backups": [b.as_dict() for b in self.backups]}


def _when(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _backup(raw: dict[str, Any]) -> Backup:
    info = raw.get("info", {})
    return Backup(
        label=raw["label"], type=raw["type"],
        started=_when(raw["timestamp"]["start"]), stopped=_when(raw["timestamp"]["stop"]),
        size=int(info.get("size", 0)), delta=int(info.get("delta", 0)),
        repo_size=int(info.get("repository", {}).get("size", 0)),
        repo_delta=int(info.get("repository", {}).get("delta", 0)),
        wal_start=(raw.get("archive") or {}).get("start") or "",
        wal_stop=(raw.get("archive") or {}).get("stop") or "",
        prior=raw.get("prior"), error=bool(raw.get("error", False)))


def parse_info(text: str) -> list[Stanza]:
    """Every stanza `pgbackrest --output=json info` reports, backups oldest first."""
    try:
        data = json.loads(text)
        stanzas = []
        for raw in data:
            archives = raw.get("archive") or []
            stanzas.append(Stanza(
                name=raw["name"], status_code=int(raw["status"]["code"]),
                status=raw["status"]["message"], cipher=raw.get("cipher", "none"),
                backups=sorted((_backup(b) for b in raw.get("backup") or []),
                               key=lambda b: b.stopped),
                wal_min=min((a["min"] for a in archives if a.get("min")), default=None),
                wal_max=max((a["max"] for a in archives if a.get("max")), default=None),
                backup_running=bool(((raw["status"].get("lock") or {}).get("backup") or {})
                                    .get("held", False))))
    except (ValueError, KeyError, TypeError) as exc:
        raise InfoUnreadable(f"pgbackrest info: unexpected output ({exc})") from exc
    return stanzas


def stanza(stanzas: list[Stanza], name: str) -> Stanza:
    for one in stanzas:
        if one.name == name:
            return one
    raise InfoUnreadable(f"pgbackrest info: no stanza {name!r} in the repository "
                         "(has `opsctl apply` run the backup playbook?)")
