"""extract-desensitised: 保密库 → 运行库 → 查询库, names and ID numbers masked.

Reads every contract of `classified.contracts`, masks the contractor's name and ID-card
number (pure functions below), and makes `operational.contracts` equal to the result: new
contracts inserted, changed ones updated, ones gone from classified deleted. Then it refreshes
`query.contracts` (what the public query service reads; no ID number at all) from
`operational.contracts` the same way. Each database is changed in one transaction; a run that
finds nothing to change changes nothing, so it is safe to repeat (retries, missed runs).

It runs on the primary, connected over the local socket as `postgres` (peer), and drops to the
NOLOGIN role `opsctl_extract` (SET ROLE) at once: what it may touch is that role's grants
(roles/postgresql, postgresql_extract_grants). On a standby it refuses (exit 3).

    python3 -m scheduler.actions.extract_desensitised [--host /var/run/postgresql]
        [--port 5432] [--role opsctl_extract] [--batch 5000]

Prints one JSON line: what was read and what changed in each database. Exit 0 done, 1 failed,
3 not on the primary.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

# The postgresql role's cluster port and extract role (postgresql_port,
# postgresql_extract_role): the scheduled job passes neither, and this file runs on hosts where
# the role's defaults are not, so it keeps copies; tests/unit/test_one_source.py ties them.
DEFAULT_PORT = 5432
DEFAULT_ROLE = "opsctl_extract"

# --- masking (pure) --------------------------------------------------------------------------

# Compound surnames (复姓) kept whole; any other name keeps its first character.
_COMPOUND = (
    "欧阳 太史 端木 上官 司马 东方 独孤 南宫 万俟 闻人 夏侯 诸葛 尉迟 公羊 赫连 澹台 皇甫 宗政 "
    "濮阳 公冶 太叔 申屠 公孙 慕容 仲孙 钟离 长孙 宇文 司徒 鲜于 司空 闾丘 子车 亓官 司寇 巫马 "
    "公西 颛孙 壤驷 公良 漆雕 乐正 宰父 谷梁 拓跋 夹谷 轩辕 令狐 段干 百里 呼延 东郭 南门 羊舌 "
    "微生 公户 公玉 公仪 梁丘 公仲 公上 公门 公山 公坚 左丘 公伯 西门 公祖 第五 公乘 贯丘 公皙 "
    "南荣 东里 东宫 仲长 子书 子桑 即墨 达奚 褚师")
COMPOUND_SURNAMES = frozenset(_COMPOUND.split())
# Separators inside a transliterated minority name (买买提·艾力) stay as they are.
NAME_SEPARATORS = frozenset("·•. ")
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"
ID_18 = re.compile(r"^[0-9]{17}[0-9X]$")
ID_15 = re.compile(r"^[0-9]{15}$")


def mask_name(name: str) -> str:
    """Keep the surname, mask every other character: 张三丰 → 张**, 欧阳娜娜 → 欧阳**.

    A one-character name is masked whole; separators of a transliterated name stay.
    """
    name = name.strip()
    if not name:
        return ""
    keep = 2 if name[:2] in COMPOUND_SURNAMES and len(name) > 2 else 1
    if len(name) == 1:
        keep = 0
    return name[:keep] + "".join(c if c in NAME_SEPARATORS else "*" for c in name[keep:])


def id_check_digit(first17: str) -> str:
    """The GB 11643 check digit (ISO 7064 MOD 11-2) of the first 17 digits."""
    if not re.fullmatch(r"[0-9]{17}", first17):
        raise ValueError("expected 17 digits")
    return ID_CHECK[sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS, strict=True)) % 11]


def valid_id_number(number: str) -> bool:
    number = number.strip().upper()
    return bool(ID_18.match(number)) and id_check_digit(number[:17]) == number[17]


def mask_id_number(number: str) -> str:
    """Keep the first 3 and last 4 characters of an 18-digit (or old 15-digit) ID number:
    110101199003071234 → 110***********1234 (a lower-case x check digit becomes X).
    Anything else is masked whole: a value we cannot recognise is not one to half-show."""
    number = number.strip().upper()
    if ID_18.match(number) or ID_15.match(number):
        return number[:3] + "*" * (len(number) - 7) + number[-4:]
    return "*" * len(number)


@dataclass(frozen=True)
class Contract:
    """A row of classified.contracts, as read."""

    contract_id: str
    contractor_name: str
    id_number: str
    village_code: str
    area_mu: Any  # Decimal from the driver; kept as is
    updated_at: Any


def desensitise(row: Contract) -> tuple[Any, ...]:
    """The operational row of a classified one (column order of OPERATIONAL_COLUMNS)."""
    return (row.contract_id, mask_name(row.contractor_name), mask_id_number(row.id_number),
            row.village_code, row.area_mu, row.updated_at)


# --- SQL ---------------------------------------------------------------------------------------

SOURCE = ("SELECT contract_id, contractor_name, id_number, village_code, area_mu, updated_at "
          "FROM contracts")
OPERATIONAL_COLUMNS = ("contract_id", "contractor", "id_number", "village_code", "area_mu",
                       "source_updated_at")
QUERY_COLUMNS = ("contract_id", "contractor", "village_code", "area_mu")


def sync_sql(table: str, columns: Sequence[str], stamp: str) -> tuple[str, str, str]:
    """(upsert, delete, staging DDL): make `table` equal to the staging table `incoming`.

    Rows are updated only when a column differs, so a repeated run changes nothing; `stamp`
    is the column set to now() on every insert or update.
    """
    cols = ", ".join(columns)
    key, rest = columns[0], columns[1:]
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in rest)
    differs = " OR ".join(f"{table}.{c} IS DISTINCT FROM EXCLUDED.{c}" for c in rest)
    upsert = (f"INSERT INTO {table} ({cols}, {stamp}) SELECT {cols}, now() FROM incoming "
              f"ON CONFLICT ({key}) DO UPDATE SET {sets}, {stamp} = now() WHERE {differs} "
              f"RETURNING (xmax = 0) AS inserted")
    delete = (f"DELETE FROM {table} t WHERE NOT EXISTS "
              f"(SELECT 1 FROM incoming i WHERE i.{key} = t.{key})")
    staging = (f"CREATE TEMPORARY TABLE incoming ON COMMIT DROP AS "
               f"SELECT {cols} FROM {table} WITH NO DATA")
    return upsert, delete, staging


@dataclass
class Changes:
    inserted: int = 0
    updated: int = 0
    deleted: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"inserted": self.inserted, "updated": self.updated, "deleted": self.deleted}


def batched(rows: Iterable[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def replace_rows(conn: Any, table: str, columns: Sequence[str], stamp: str,
                 rows: Iterable[tuple[Any, ...]], batch: int) -> Changes:
    """Make `table` hold exactly `rows` (by key), in one transaction of `conn`."""
    from psycopg2.extras import execute_values  # noqa: PLC0415 - on the host only

    upsert, delete, staging = sync_sql(table, columns, stamp)
    changes = Changes()
    with conn, conn.cursor() as cur:
        cur.execute(staging)
        for chunk in batched(rows, batch):
            execute_values(cur, f"INSERT INTO incoming ({', '.join(columns)}) VALUES %s",
                           chunk, page_size=batch)
        cur.execute(upsert)
        for (inserted,) in cur.fetchall():
            if inserted:
                changes.inserted += 1
            else:
                changes.updated += 1
        cur.execute(delete)
        changes.deleted = cur.rowcount
    return changes


class NotPrimary(RuntimeError):
    pass


def connect(args: argparse.Namespace, database: str) -> Any:
    import psycopg2  # noqa: PLC0415 - on the host only

    conn = psycopg2.connect(host=args.host, port=args.port, dbname=database,
                            application_name="opsctl-extract-desensitised")
    with conn.cursor() as cur:
        cur.execute("SELECT pg_is_in_recovery()")
        if cur.fetchone()[0]:
            conn.close()
            raise NotPrimary(f"{args.host}:{args.port} is a standby; the extract runs on the "
                             "primary")
        cur.execute(f"SET ROLE {args.role}")
    conn.commit()
    return conn


def run(args: argparse.Namespace) -> dict[str, Any]:
    start = time.monotonic()
    source = connect(args, "classified")
    try:
        # A named cursor streams the rows in batches instead of loading them all.
        with source, source.cursor(name="extract") as cur:
            cur.itersize = args.batch
            cur.execute(SOURCE)
            rows = [desensitise(Contract(*r)) for r in cur]
    finally:
        source.close()
    operational = connect(args, "operational")
    try:
        op_changes = replace_rows(operational, "contracts", OPERATIONAL_COLUMNS, "extracted_at",
                                  rows, args.batch)
        with operational, operational.cursor(name="refresh") as cur:
            cur.itersize = args.batch
            cur.execute(f"SELECT {', '.join(QUERY_COLUMNS)} FROM contracts")
            public = list(cur)
    finally:
        operational.close()
    query = connect(args, "query")
    try:
        q_changes = replace_rows(query, "contracts", QUERY_COLUMNS, "refreshed_at", public,
                                 args.batch)
    finally:
        query.close()
    return {"read": len(rows), "operational": op_changes.as_dict(),
            "query": q_changes.as_dict(), "seconds": round(time.monotonic() - start, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m scheduler.actions.extract_desensitised",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="/var/run/postgresql",
                        help="socket directory or address of the primary")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--role", default=DEFAULT_ROLE,
                        help="role to work as (SET ROLE)")
    parser.add_argument("--batch", type=int, default=5000)
    # The scheduled job runs on every database host, because Patroni moves the leader: on a
    # standby it has nothing to do and succeeds (skip); by hand, a standby is refused (exit 3).
    parser.add_argument("--on-standby", choices=("refuse", "skip"), default="refuse",
                        help="what to do on a standby: refuse (exit 3) or skip (exit 0)")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", args.role):
        print(f"extract-desensitised: --role {args.role!r} is not a role name", file=sys.stderr)
        return 2
    try:
        summary = run(args)
    except NotPrimary as exc:
        if args.on_standby == "skip":
            print(json.dumps({"skipped": str(exc)}, ensure_ascii=False))
            return 0
        print(f"extract-desensitised: {exc}", file=sys.stderr)
        return 3
    except Exception as exc:  # noqa: BLE001 - any database failure fails the run, said once
        print(f"extract-desensitised: failed: {type(exc).__name__}: {exc}".strip(),
              file=sys.stderr)
        return 1
    print(json.dumps(summary, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
