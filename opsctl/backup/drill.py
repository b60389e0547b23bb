"""Restore drills: what to compare (pure) and the SQL that measures both sides.

A drill restores the repository into a scratch cluster on the backup host, up to a target
time, and compares every user table there with the source as of the same moment: row count
and an order-independent digest of the rows. The source's state as of the target comes from
commit timestamps (track_commit_timestamp = on, set by the postgresql role): rows whose
inserting transaction committed after the target are left out. That is exact for tables that
only had rows inserted since the target; a row updated or deleted since then shows up as a
difference (the drill then says so rather than pass).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opsctl.errors import OpsctlError


class DrillError(OpsctlError):
    """A drill step failed on a host (the scratch cluster is removed all the same)."""

    exit_code = 1


@dataclass(frozen=True)
class TableSum:
    database: str
    table: str
    rows: int
    digest: str


@dataclass(frozen=True)
class TableCheck:
    database: str
    table: str
    source_rows: int | None
    restored_rows: int | None
    digest_match: bool

    @property
    def ok(self) -> bool:
        return self.source_rows == self.restored_rows and self.digest_match

    @property
    def reason(self) -> str:
        if self.source_rows is None:
            return "only in the restored copy"
        if self.restored_rows is None:
            return "missing from the restored copy"
        if self.source_rows != self.restored_rows:
            return f"rows differ ({self.source_rows} vs {self.restored_rows})"
        if not self.digest_match:
            return "row contents differ"
        return "match"

    def as_dict(self) -> dict[str, Any]:
        return {"database": self.database, "table": self.table,
                "source_rows": self.source_rows, "restored_rows": self.restored_rows,
                "digest_match": self.digest_match, "ok": self.ok, "reason": self.reason}


def compare(source: list[TableSum], restored: list[TableSum]) -> list[TableCheck]:
    """One check per table found on either side, in (database, table) order."""
    left = {(s.database, s.table): s for s in source}
    right = {(s.database, s.table): s for s in restored}
    checks = []
    for key in sorted(left.keys() | right.keys()):
        a, b = left.get(key), right.get(key)
        checks.append(TableCheck(
            database=key[0], table=key[1],
            source_rows=a.rows if a else None, restored_rows=b.rows if b else None,
            digest_match=bool(a and b and a.digest == b.digest)))
    return checks


def parse_sums(database: str, text: str) -> list[TableSum]:
    """psql -At output of `table_sums_sql`: one `table|rows|digest` line per table."""
    sums = []
    for line in text.splitlines():
        if not line.strip():
            continue
        table, rows, digest = line.rsplit("|", 2)
        sums.append(TableSum(database, table, int(rows), digest))
    return sums


def table_sums_sql(as_of: datetime | None) -> str:
    """SQL for psql: per ordinary user table, its row count and a digest of its rows.

    With `as_of`, only rows whose inserting transaction committed by then; rows without a
    commit timestamp (older than track_commit_timestamp, or frozen) count as earlier."""
    row = ("SELECT %L, count(*), coalesce(md5(string_agg(md5(t::text), '' "
           "ORDER BY md5(t::text))), '') FROM %s t")
    if as_of is not None:
        row += (" WHERE coalesce(pg_xact_commit_timestamp(t.xmin) <= "
                f"'{as_of.isoformat()}'::timestamptz, true)")
    template = row.replace("'", "''")
    # Rows become text the same way on both sides whatever each server's defaults are.
    return ("SET TimeZone = 'UTC';\nSET DateStyle = 'ISO, YMD';\n"
            "SET IntervalStyle = 'postgres';\nSET extra_float_digits = 1;\n"
            "SET bytea_output = 'hex';\n"
            f"SELECT format('{template}', n.nspname || '.' || c.relname, c.oid::regclass)\n"
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace\n"
            "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')\n"
            "  AND n.nspname NOT LIKE 'pg\\_%'\n"
            "ORDER BY n.nspname, c.relname\n"
            "\\gexec\n")


DATABASES_SQL = ("SELECT datname FROM pg_database WHERE NOT datistemplate "
                 "AND datname <> 'postgres' ORDER BY datname")


@dataclass
class DrillReport:
    id: str
    site: str
    stanza: str
    target: str  # ISO time restored to
    requested_target: str | None  # None: the newest state
    backup: str | None  # label pgBackRest restored from
    started: str
    seconds: float = 0.0
    checks: list[TableCheck] | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "site": self.site, "stanza": self.stanza,
                "target": self.target, "requested_target": self.requested_target,
                "backup": self.backup, "started": self.started, "seconds": self.seconds,
                "result": "pass" if self.ok else "fail",
                "tables": [c.as_dict() for c in self.checks or []]}
