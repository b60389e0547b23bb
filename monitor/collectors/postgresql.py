"""PostgreSQL on a database host: up, primary or replica, replication lag.

The agent is unprivileged: it connects as the `opsctl_monitor` role (member of pg_monitor)
over the local socket with peer authentication, which pg_ident.conf maps from the agent's
own system account; no password exists anywhere. One `psql` per scrape (Debian's client,
already on a database host), one query whose rows are `metric|label|value`.

Gathering (`query`) is apart from meaning (`parse`): tests feed recorded psql output.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily, Metric

# Every branch returns (metric, label, value). On the primary: each physical slot and each
# walsender; on a replica: how far replay trails what was received. Functions that only work
# on one side are guarded by pg_is_in_recovery() row by row.
SQL = """
SELECT 'in_recovery', '', pg_is_in_recovery()::int::float8
UNION ALL
SELECT 'slot_active', slot_name::text, active::int::float8 FROM pg_replication_slots
 WHERE slot_type = 'physical' AND NOT pg_is_in_recovery()
UNION ALL
SELECT 'streaming', application_name, 1 FROM pg_stat_replication
 WHERE state = 'streaming' AND NOT pg_is_in_recovery()
UNION ALL
SELECT 'replica_lag_bytes', application_name,
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8
  FROM pg_stat_replication WHERE replay_lsn IS NOT NULL AND NOT pg_is_in_recovery()
UNION ALL
SELECT 'replica_lag_seconds', application_name,
       COALESCE(EXTRACT(epoch FROM replay_lag), 0)::float8
  FROM pg_stat_replication WHERE NOT pg_is_in_recovery()
UNION ALL
SELECT 'replay_lag_bytes', '', COALESCE(pg_wal_lsn_diff(pg_last_wal_receive_lsn(),
       pg_last_wal_replay_lsn()), 0)::float8 WHERE pg_is_in_recovery()
UNION ALL
SELECT 'replay_lag_seconds', '', CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()
       THEN 0 ELSE COALESCE(EXTRACT(epoch FROM now() - pg_last_xact_replay_timestamp()), 0)
       END::float8 WHERE pg_is_in_recovery()
UNION ALL
SELECT 'wal_receiver_streaming', '', count(*)::float8 FROM pg_stat_wal_receiver
 WHERE status = 'streaming' AND pg_is_in_recovery()
"""


@dataclass(frozen=True)
class PostgresSettings:
    # What a configuration leaves out. The monitor_agent role writes monitor_agent_postgresql
    # in full; the agent runs on hosts without the role's defaults, so these are copies that
    # tests/unit/test_one_source.py ties to it.
    socket_dir: str = "/var/run/postgresql"
    port: int = 5432
    user: str = "opsctl_monitor"
    database: str = "postgres"
    # The members that should stream from this server whenever it is the primary (Patroni's
    # member names, its application_name). Patroni drops the slot of a member whose Patroni
    # stopped, so a stopped replica is seen by its absence from pg_stat_replication.
    replicas: tuple[str, ...] = ()


@dataclass
class PgState:
    up: bool
    in_recovery: bool | None = None
    slots_active: dict[str, float] = field(default_factory=dict)
    streaming: dict[str, float] = field(default_factory=dict)
    replica_lag_bytes: dict[str, float] = field(default_factory=dict)
    replica_lag_seconds: dict[str, float] = field(default_factory=dict)
    replay_lag_bytes: float | None = None
    replay_lag_seconds: float | None = None
    wal_receiver_streaming: float | None = None


def psql_argv(settings: PostgresSettings) -> list[str]:
    return ["psql", "-X", "-w", "-q", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1",
            "-h", settings.socket_dir, "-p", str(settings.port), "-U", settings.user,
            "-d", settings.database, "-c", SQL]


def query(settings: PostgresSettings) -> tuple[int, str]:
    """Run the query; (exit code, stdout). A missing psql or a hang is exit 127/124."""
    env = dict(os.environ, PGCONNECT_TIMEOUT="3")
    try:
        done = subprocess.run(psql_argv(settings), capture_output=True, text=True, timeout=5,
                              check=False, env=env)
    except FileNotFoundError:
        return 127, ""
    except subprocess.TimeoutExpired:
        return 124, ""
    return done.returncode, done.stdout


def parse(code: int, output: str) -> PgState:
    if code != 0:
        return PgState(up=False)
    state = PgState(up=True)
    per_label = {"slot_active": state.slots_active, "streaming": state.streaming,
                 "replica_lag_bytes": state.replica_lag_bytes,
                 "replica_lag_seconds": state.replica_lag_seconds}
    for line in output.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 3:
            continue
        metric, label, raw = parts
        try:
            value = float(raw)
        except ValueError:
            continue
        if metric in per_label:
            per_label[metric][label] = value
        elif metric == "in_recovery":
            state.in_recovery = value == 1
        elif metric in ("replay_lag_bytes", "replay_lag_seconds", "wal_receiver_streaming"):
            setattr(state, metric, value)
    if state.in_recovery is None:  # answered, but not our query's answer
        return PgState(up=False)
    return state


class PostgresCollector:
    def __init__(self, settings: PostgresSettings,
                 run: Callable[[PostgresSettings], tuple[int, str]] = query) -> None:
        self.settings, self.run = settings, run

    def collect(self) -> Iterator[Metric]:
        state = parse(*self.run(self.settings))
        up = GaugeMetricFamily("opsctl_postgresql_up",
                               "Whether the local PostgreSQL server answered the agent.")
        up.add_metric([], 1.0 if state.up else 0.0)
        yield up
        if not state.up:
            return
        recovery = GaugeMetricFamily(
            "opsctl_postgresql_in_recovery", "1 on a replica (in recovery), 0 on the primary.")
        recovery.add_metric([], 1.0 if state.in_recovery else 0.0)
        yield recovery
        if state.in_recovery:
            for name, help_text, value in (
                ("opsctl_postgresql_replay_lag_bytes",
                 "WAL received from the primary and not yet replayed.", state.replay_lag_bytes),
                ("opsctl_postgresql_replay_lag_seconds",
                 "Age of the last replayed transaction while replay trails what was received "
                 "(0 when caught up).", state.replay_lag_seconds),
                ("opsctl_postgresql_wal_receiver_streaming",
                 "1 while the WAL receiver streams from the primary.",
                 state.wal_receiver_streaming),
            ):
                family = GaugeMetricFamily(name, help_text)
                family.add_metric([], value or 0.0)
                yield family
            return
        expected = {r: state.streaming.get(r, 0.0) for r in self.settings.replicas}
        for name, help_text, label, values in (
            ("opsctl_postgresql_replica_streaming",
             "1 while the replica streams from this primary, 0 for an expected replica that "
             "does not.", "replica", {**expected, **state.streaming}),
            ("opsctl_postgresql_replication_slot_active",
             "1 while a replica streams through its physical replication slot.", "slot",
             state.slots_active),
            ("opsctl_postgresql_replica_lag_bytes",
             "WAL the primary wrote that the replica has not replayed yet.", "replica",
             state.replica_lag_bytes),
            ("opsctl_postgresql_replica_lag_seconds",
             "The replica's replay lag as the primary measures it (0 when idle).", "replica",
             state.replica_lag_seconds),
        ):
            family = GaugeMetricFamily(name, help_text, labels=[label])
            for key, value in sorted(values.items()):
                family.add_metric([key], value)
            yield family
