"""Patroni's `/cluster` JSON and the leader's SQL facts, read into our types and judged.

Pure: text in, objects out. `opsctl db status` renders a `ClusterStatus`; switchover and
failover use `pick_candidate` to decide (or refuse) before anything changes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from opsctl.errors import OpsctlError

# Patroni's member states that mean "PostgreSQL runs and follows or leads".
RUNNING = ("running", "streaming")
# Bytes: the lag bound when a caller names none. This module reads no files, so it keeps a
# copy of the postgresql role's postgresql_patroni_maximum_lag_on_failover (the bound Patroni
# keeps for automatic promotion); tests/unit/test_one_source.py ties the two.
MAX_LAG_BYTES = 1 << 20


class ClusterUnreadable(OpsctlError):
    """Patroni's or PostgreSQL's answer was not what we expect."""

    exit_code = 1


class SwitchRefused(OpsctlError):
    """The cluster is not in a state where the requested change is safe; nothing changed."""

    exit_code = 1


@dataclass(frozen=True)
class Member:
    name: str
    host: str
    role: str  # leader | sync_standby | replica (Patroni's words)
    state: str  # running | streaming | starting | stopped | crashed | ...
    timeline: int | None
    lag_bytes: int | None  # None for the leader or when Patroni does not know
    lag_seconds: float | None = None  # replay lag as the leader sees it (None: unknown)
    pending_restart: bool = False

    @property
    def is_leader(self) -> bool:
        return self.role in ("leader", "standby_leader")

    @property
    def runs(self) -> bool:
        return self.state in RUNNING


@dataclass(frozen=True)
class Slot:
    name: str
    active: bool
    retained_bytes: int | None


@dataclass(frozen=True)
class Archiver:
    last_archived_wal: str | None
    last_archived_time: str | None
    failed_count: int
    last_failed_wal: str | None


@dataclass(frozen=True)
class ClusterStatus:
    members: list[Member]
    slots: list[Slot] = field(default_factory=list)
    connections: dict[str, int] = field(default_factory=dict)
    archiver: Archiver | None = None
    paused: bool = False
    synchronous_mode: bool | None = None
    # The hosts the site says are members (group db); one missing from Patroni's list has
    # no running Patroni (its member key expired).
    expected: tuple[str, ...] = ()

    @property
    def leader(self) -> Member | None:
        return next((m for m in self.members if m.is_leader), None)

    def member(self, name: str) -> Member | None:
        return next((m for m in self.members if m.name == name), None)

    def problems(self, max_lag_bytes: int = MAX_LAG_BYTES) -> list[str]:
        """What keeps this cluster from being healthy; empty when it is."""
        found: list[str] = []
        leaders = [m for m in self.members if m.is_leader]
        if not leaders:
            found.append("no leader")
        elif len(leaders) > 1:
            found.append(f"more than one leader: {', '.join(m.name for m in leaders)}")
        for name in self.expected:
            if self.member(name) is None:
                found.append(f"{name}: not in the cluster (Patroni not running there)")
        for m in self.members:
            if not m.runs:
                found.append(f"{m.name}: {m.state or 'unknown state'}")
            elif not m.is_leader and m.lag_bytes is None:
                found.append(f"{m.name}: lag unknown")
            elif not m.is_leader and m.lag_bytes is not None and m.lag_bytes > max_lag_bytes:
                found.append(f"{m.name}: {m.lag_bytes} bytes behind (bound {max_lag_bytes})")
        if self.synchronous_mode and leaders and len(self.members) + len(
                set(self.expected) - {m.name for m in self.members}) > 1 and not any(
                m.role == "sync_standby" for m in self.members):
            found.append("synchronous_mode is on but no replica is synchronous")
        if self.paused:
            found.append("Patroni is paused (no automatic failover)")
        if self.archiver and self.archiver.failed_count and (
                self.archiver.last_failed_wal or "") > (self.archiver.last_archived_wal or ""):
            found.append(f"WAL archiving failing (last failed {self.archiver.last_failed_wal})")
        return found

    def as_dict(self, max_lag_bytes: int = MAX_LAG_BYTES) -> dict[str, Any]:
        leader = self.leader
        return {
            "leader": leader.name if leader else None,
            "healthy": not self.problems(max_lag_bytes),
            "problems": self.problems(max_lag_bytes),
            "paused": self.paused,
            "synchronous_mode": self.synchronous_mode,
            "members": [asdict(m) for m in self.members],
            "slots": [asdict(s) for s in self.slots],
            "connections": self.connections,
            "archiver": asdict(self.archiver) if self.archiver else None,
        }


def _load(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        first = (text.strip().splitlines() or ["(empty)"])[0][:120]
        raise ClusterUnreadable(f"{what}: not JSON ({first})") from exc


def split_answer(text: str) -> tuple[str, bool]:
    """ops' fetch prints {"cluster": /cluster, "config": /config}: (cluster JSON, sync mode)."""
    data = _load(text, "Patroni REST API")
    if not isinstance(data, dict) or "cluster" not in data:
        raise ClusterUnreadable("Patroni REST API: no /cluster in the answer")
    config = data.get("config") or {}
    return json.dumps(data["cluster"]), bool(config.get("synchronous_mode", False))


def parse_cluster(text: str) -> tuple[list[Member], bool]:
    """Patroni's GET /cluster: its members (sorted by name) and whether it is paused."""
    data = _load(text, "Patroni /cluster")
    if not isinstance(data, dict) or not isinstance(data.get("members"), list):
        raise ClusterUnreadable("Patroni /cluster: no member list")
    members = []
    for m in data["members"]:
        lag = m.get("lag")
        members.append(Member(
            name=str(m.get("name", "?")), host=str(m.get("host", "")),
            role=str(m.get("role", "")), state=str(m.get("state", "")),
            timeline=m.get("timeline"), lag_bytes=lag if isinstance(lag, int) else None,
            pending_restart=bool(m.get("pending_restart", False))))
    return sorted(members, key=lambda m: m.name), bool(data.get("pause", False))


# One round trip on the leader: everything `db status` shows that Patroni does not.
LEADER_SQL = """
SELECT json_build_object(
  'replication', (SELECT coalesce(json_agg(json_build_object(
      'name', application_name, 'state', state, 'sync_state', sync_state,
      'lag_bytes', pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint,
      'lag_seconds', coalesce(extract(epoch FROM replay_lag), 0)::float8)), '[]'::json)
    FROM pg_stat_replication),
  'slots', (SELECT coalesce(json_agg(json_build_object(
      'name', slot_name, 'active', active,
      'retained_bytes', pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint)
      ORDER BY slot_name), '[]'::json) FROM pg_replication_slots),
  'connections', (SELECT coalesce(json_object_agg(datname, n), '{}'::json) FROM (
      SELECT d.datname, count(a.pid) AS n FROM pg_database d
      LEFT JOIN pg_stat_activity a ON a.datid = d.oid
      WHERE NOT d.datistemplate GROUP BY d.datname ORDER BY d.datname) c),
  'archiver', (SELECT json_build_object('last_archived_wal', last_archived_wal,
      'last_archived_time', last_archived_time, 'failed_count', failed_count,
      'last_failed_wal', last_failed_wal) FROM pg_stat_archiver),
  'synchronous_standby_names', current_setting('synchronous_standby_names'))
""".strip()


def merge_leader_facts(members: list[Member], paused: bool, text: str) -> ClusterStatus:
    """Add the leader's SQL facts (LEADER_SQL's one JSON row) to Patroni's members."""
    data = _load(text, "leader SQL")
    lag = {r["name"]: r for r in data.get("replication") or []}
    merged = []
    for m in members:
        row = lag.get(m.name)
        if row and not m.is_leader:
            lag_bytes = m.lag_bytes if m.lag_bytes is not None else row.get("lag_bytes")
            m = Member(m.name, m.host, m.role, m.state, m.timeline,
                       max(lag_bytes or 0, row.get("lag_bytes") or 0) if lag_bytes is not None
                       else None, float(row.get("lag_seconds") or 0.0), m.pending_restart)
        merged.append(m)
    archiver = data.get("archiver") or {}
    return ClusterStatus(
        members=merged,
        slots=[Slot(s["name"], bool(s["active"]), s.get("retained_bytes"))
               for s in data.get("slots") or []],
        connections={str(k): int(v) for k, v in (data.get("connections") or {}).items()},
        archiver=Archiver(archiver.get("last_archived_wal"), archiver.get("last_archived_time"),
                          int(archiver.get("failed_count") or 0), archiver.get("last_failed_wal")),
        paused=paused,
        synchronous_mode=bool(data.get("synchronous_standby_names")) or None)


def pick_candidate(status: ClusterStatus, wanted: str | None, max_lag_bytes: int,
                   need_leader: bool) -> tuple[Member | None, Member]:
    """(current leader, the member to promote) or SwitchRefused / ValueError for bad input.

    ValueError means the operator named something that is not a member or is the leader
    already (bad input); SwitchRefused means the cluster is not ready for it now.
    """
    leader = status.leader
    if need_leader and leader is None:
        raise SwitchRefused("no leader: a switchover needs one; when Patroni cannot elect "
                            "one, use `opsctl db failover`")
    if wanted is not None:
        chosen = status.member(wanted)
        if chosen is None:
            names = ", ".join(m.name for m in status.members)
            raise ValueError(f"{wanted!r} is not a member of the cluster ({names})")
        if chosen.is_leader:
            raise ValueError(f"{wanted} is the leader already")
    else:
        replicas = [m for m in status.members if not m.is_leader and m.runs]
        replicas.sort(key=lambda m: (m.role != "sync_standby", m.lag_bytes or 0, m.name))
        if not replicas:
            raise SwitchRefused("no running replica to promote")
        chosen = replicas[0]
    if not chosen.runs:
        raise SwitchRefused(f"{chosen.name} is {chosen.state or 'not running'}; nothing changed")
    if chosen.lag_bytes is None and leader is not None:
        raise SwitchRefused(f"{chosen.name}: lag unknown; nothing changed")
    if chosen.lag_bytes is not None and chosen.lag_bytes > max_lag_bytes:
        raise SwitchRefused(f"{chosen.name} is {chosen.lag_bytes} bytes behind the leader "
                            f"(bound {max_lag_bytes}); nothing changed")
    if (leader is not None and status.synchronous_mode and chosen.role != "sync_standby"):
        raise SwitchRefused(f"{chosen.name} is not the synchronous replica; promoting it could "
                            "lose acknowledged commits; nothing changed")
    return leader, chosen
