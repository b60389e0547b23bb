"""`opsctl check --local` and `opsctl check catalog`."""

from __future__ import annotations

import click
from rich.table import Table

from opsctl.check.fleet import scan_named_site
from opsctl.check.render import RENDERERS, catalog_rows
from opsctl.check.scan import catalog as load_checks
from opsctl.check.scan import scan_local
from opsctl.cli.render import OUTPUT_OPTION, console, emit_json

LEVEL = click.option("--level", type=click.IntRange(2, 3), default=3, show_default=True,
                     help="Protection level whose checks apply.")


@click.group(invoke_without_command=True)
@click.option("--local", "local", is_flag=True, help="Scan the machine this runs on (no SSH).")
@click.option("--site", "site_name", metavar="NAME",
              help="Scan every host of a site over SSH, and its network.")
@click.option("--limit", metavar="HOST[,HOST]", help="With --site: only these hosts.")
@click.option("--probe", is_flag=True,
              help="With --site: probe the running lab's flow matrix for the network checks.")
@LEVEL
@click.option("--format", "fmt", type=click.Choice(sorted(RENDERERS)), default="table",
              show_default=True)
@click.option("--fail-on", type=click.Choice(["any", "low", "medium", "high"]), default="any",
              show_default=True, help="Exit 1 when a check at or above this severity fails.")
@click.pass_context
def check(ctx: click.Context, local: bool, site_name: str | None, limit: str | None,
          probe: bool, level: int, fmt: str, fail_on: str) -> int | None:
    """Graded-protection (等级保护 level 3) compliance scan against the check catalog."""
    if ctx.invoked_subcommand is not None:
        return None
    if local == bool(site_name):
        raise click.UsageError("say what to scan: --local or --site NAME")
    if (limit or probe) and not site_name:
        raise click.UsageError("--limit and --probe go with --site")
    if site_name:
        hosts = [h.strip() for h in limit.split(",") if h.strip()] if limit else None
        scan = scan_named_site(site_name, level, hosts, probe)
    else:
        scan = scan_local(level)
    RENDERERS[fmt]().write(scan, console)
    return 1 if scan.failures(fail_on) else 0


@check.command("catalog")
@LEVEL
@OUTPUT_OPTION
def catalog_cmd(level: int, output: str) -> None:
    """List every check with its clause, test unit, level, severity and remediation."""
    rows = catalog_rows(load_checks(level))
    if output == "json":
        emit_json(rows)
        return
    table = Table(title=f"{len(rows)} checks at level {level}", title_justify="left")
    table.add_column("id", no_wrap=True)
    for col in ("clause", "unit", "levels", "severity", "remediation"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["id"], r["clause"], r["unit"], ",".join(map(str, r["levels"])),
                      r["severity"] + (" ⚠" if r["major_risk"] else ""), r["remediation"])
    console.print(table)
