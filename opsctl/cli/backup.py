"""`opsctl backup run|list|verify|drill`: pgBackRest on the site's backup host."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from opsctl.backup import ops
from opsctl.cli.options import OUTPUT_OPTION, SITE_OPTION, site_to_change, site_to_read
from opsctl.cli.render import console, emit_json


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@click.group()
def backup() -> None:
    """Storage backup: pgBackRest backups, verification and restore drills."""


@backup.command("run")
@SITE_OPTION
@click.option("--type", "kind", type=click.Choice(ops.TYPES), default="incr", show_default=True)
@OUTPUT_OPTION
def run_cmd(site: str | None, kind: str, output: str) -> None:
    """Take a backup of the primary now."""
    made = ops.run(site_to_change(site, output), kind)
    if output == "json":
        emit_json(made.as_dict())
        return
    click.echo(f"backup {made.label} ({made.type}): {_size(made.delta)} copied, "
               f"{_size(made.repo_delta)} added to the repository")


@backup.command("list")
@SITE_OPTION
@OUTPUT_OPTION
def list_cmd(site: str | None, output: str) -> None:
    """The backups in the repository, oldest first."""
    stanza = ops.read_stanza(site_to_read(site))
    if output == "json":
        emit_json(stanza.as_dict())
        return
    table = Table(title=f"stanza {stanza.name}: {stanza.status}, cipher {stanza.cipher}, "
                        f"WAL {stanza.wal_min or '-'} .. {stanza.wal_max or '-'}")
    for column in ("label", "type", "stopped (UTC)", "seconds", "database", "repo added"):
        table.add_column(column)
    for b in stanza.backups:
        d = b.as_dict()
        table.add_row(b.label, b.type, b.stopped.strftime("%Y-%m-%d %H:%M:%S"),
                      str(d["seconds"]), _size(b.size), _size(b.repo_delta))
    console.print(table)


@backup.command("verify")
@SITE_OPTION
@OUTPUT_OPTION
def verify_cmd(site: str | None, output: str) -> None:
    """pgBackRest's verify, and the newest backup younger than the policy; exit 1 if not."""
    report = ops.verify(site_to_read(site))
    if output == "json":
        emit_json(report.as_dict())
    else:
        mark = {True: "[green]ok[/green]", False: "[red]FAIL[/red]"}
        console.print(f"repository  {mark[report.repository_ok]}  {report.repository_message}")
        console.print(f"age         {mark[report.age.ok]}  {report.age.reason}")
    sys.exit(0 if report.ok else 1)


@backup.command("drill")
@SITE_OPTION
@click.option("--target-time", default=None,
              help="Restore to this ISO 8601 time (point in time); default: now.")
@OUTPUT_OPTION
def drill_cmd(site: str | None, target_time: str | None, output: str) -> None:
    """Restore into a scratch cluster on the backup host and compare every table."""
    target = ops.parse_target(target_time) if target_time else None
    report = ops.drill(site_to_change(site, output), target)
    if output == "json":
        emit_json(report.as_dict())
    else:
        table = Table(title=f"drill {report.id}: {report.backup} to {report.target}")
        for column in ("database", "table", "source rows", "restored rows", "result"):
            table.add_column(column)
        for c in report.checks or []:
            table.add_row(c.database, c.table, str(c.source_rows), str(c.restored_rows),
                          "[green]pass[/green]" if c.ok else f"[red]FAIL[/red] {c.reason}")
        console.print(table)
        console.print(("[green]PASS[/green]" if report.ok else "[red]FAIL[/red]")
                      + f" in {report.seconds:.0f} s; recorded as drill {report.id}")
    sys.exit(0 if report.ok else 1)
