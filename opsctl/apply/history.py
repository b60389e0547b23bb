"""The run history: one directory per apply under `state_dir()/runs/`, with a run.json record.

ansible-runner's own artifacts (stdout, job events) sit beside the record, so a run can be
read back in full after the fact.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsctl.errors import NotFound
from opsctl.paths import ensure_private_dir, site_dir, state_dir

RECORD = "run.json"


@dataclass
class RunRecord:
    id: str
    site: str
    started: str
    request: dict[str, Any]
    finished: str | None = None
    seconds: float | None = None
    engine: str = ""
    rc: int | None = None
    result: str = "running"  # running | ok | failed | error
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)

    @property
    def failed_hosts(self) -> list[str]:
        return sorted(h for h, t in self.hosts.items() if t.get("status") in
                      ("failed", "unreachable"))

    @property
    def changed(self) -> int:
        return sum(t.get("changed", 0) for t in self.hosts.values())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def runs_dir() -> Path:
    return state_dir() / "runs"


def new_run_id(now: datetime | None = None) -> str:
    # Milliseconds so that ids sort by start time even for runs in the same second.
    moment = now or datetime.now(UTC)
    stamp = moment.strftime("%Y%m%dT%H%M%S") + f".{moment.microsecond // 1000:03d}Z"
    return f"{stamp}-{secrets.token_hex(2)}"


def run_dir(run_id: str) -> Path:
    return runs_dir() / run_id


def save(record: RunRecord) -> Path:
    directory = ensure_private_dir(run_dir(record.id))
    path = directory / RECORD
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record.as_dict(), indent=2, ensure_ascii=False))
    tmp.replace(path)
    return path


def load(run_id: str) -> RunRecord:
    path = run_dir(run_id) / RECORD
    try:
        return RunRecord(**json.loads(path.read_text()))
    except FileNotFoundError:
        raise NotFound(f"run {run_id!r}: no such run (see `opsctl runs`)") from None


def all_runs(site: str | None = None) -> list[RunRecord]:
    """Oldest first; ids sort by time."""
    if not runs_dir().is_dir():
        return []
    records = []
    for path in sorted(runs_dir().glob(f"*/{RECORD}")):
        try:
            record = RunRecord(**json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError):
            continue
        if site is None or record.site == site:
            records.append(record)
    return records


def runs_of(site: str | None = None) -> list[RunRecord]:
    """`opsctl runs [--site NAME]`: all_runs, but a name that is neither in any run nor a site
    is a mistake (NotFound), not an empty history."""
    records = all_runs(site)
    if site is not None and not records:
        site_dir(site)  # NotFound: no inventory/NAME and not a site directory
    return records


def resolve(run_id: str, site: str | None = None) -> RunRecord:
    """A run by id, or `last` for the newest (of a site, when given)."""
    if run_id == "last":
        records = all_runs(site)
        if not records:
            raise NotFound("no runs yet")
        return records[-1]
    return load(run_id)


def last_finished(site: str, applies_only: bool = False) -> RunRecord | None:
    """The newest finished run; with applies_only, the newest apply (deploys and rollbacks
    are runs too, marked by request.action)."""
    finished = [r for r in all_runs(site) if r.result != "running"
                and not (applies_only and "action" in r.request)]
    return finished[-1] if finished else None
