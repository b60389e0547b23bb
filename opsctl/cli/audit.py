"""`opsctl audit verify|show`."""

from __future__ import annotations

import click
from rich.table import Table

from opsctl import audit as audit_log
from opsctl.cli.options import OUTPUT_OPTION
from opsctl.cli.render import console, emit_json


@click.group()
def audit() -> None:
    """The append-only, hash-chained log of every change opsctl made."""


@audit.command()
@OUTPUT_OPTION
def verify(output: str) -> None:
    """Exit 0 when the chain is intact, 1 naming the first bad record when it is not."""
    verdict = audit_log.verify()
    if output == "json":
        emit_json(verdict.__dict__ | {"path": str(audit_log.log_path())})
    elif verdict.ok:
        click.echo(f"audit log intact: {verdict.records} records ({audit_log.log_path()})")
    else:
        click.echo(f"audit log broken at line {verdict.first_bad}: {verdict.reason} "
                   f"({verdict.records} records before it are intact)")
    raise SystemExit(0 if verdict.ok else 1)


@audit.command()
@click.option("--last", type=click.IntRange(min=1), default=20, show_default=True,
              help="How many of the newest records.")
@OUTPUT_OPTION
def show(last: int, output: str) -> None:
    """The most recent records."""
    records = audit_log.records()[-last:]
    if output == "json":
        emit_json(records)
        return
    table = Table("seq", "time", "actor", "action", "result", "args")
    for r in records:
        table.add_row(str(r["seq"]), r["time"], r["actor"], r["action"], r["result"],
                      " ".join(f"{k}={v}" for k, v in r["args"].items()))
    console.print(table)
