"""`opsctl deploy`, `opsctl rollback`, `opsctl releases`."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from opsctl.cli.options import OUTPUT_OPTION, SITE_OPTION, site_to_change, site_to_read
from opsctl.cli.render import console, emit_json, err_console
from opsctl.deploy import engine


def _progress(message: str) -> None:
    err_console.print(f"[dim]deploy:[/dim] {message}", highlight=False)


def _finish(result: engine.DeployResult, output: str) -> None:
    record = result.record
    if output == "json":
        emit_json({**record.as_dict(), "steps": result.steps})
    elif result.ok:
        console.print(f"[green]ok[/] run {record.id}: {record.request['component']} "
                      f"{record.request['version']} in {record.seconds}s")
    else:
        console.print(f"[bold red]failed[/] run {record.id}: {record.failures[0]['message']}",
                      highlight=False)
    if not result.ok:
        sys.exit(1)


@click.command()
@click.argument("component")
@click.argument("version")
@click.option("--batch", type=click.IntRange(1, 100), default=1, show_default=True,
              help="Hosts switched at a time.")
@click.option("--health-timeout", type=click.FloatRange(1, 600), default=None,
              help="Seconds a host has to pass its health check (the component's by default).")
@SITE_OPTION
@OUTPUT_OPTION
def deploy(component: str, version: str, batch: int, health_timeout: float | None, site: str | None,
           output: str) -> None:
    """Roll COMPONENT to VERSION, one batch of hosts at a time, without dropping a request."""
    request = engine.DeployRequest(component, version, batch, health_timeout)
    _finish(engine.deploy(site_to_change(site, output), request, _progress), output)


@click.command()
@click.argument("component")
@click.option("--batch", type=click.IntRange(1, 100), default=1, show_default=True)
@SITE_OPTION
@OUTPUT_OPTION
def rollback(component: str, batch: int, site: str | None, output: str) -> None:
    """Roll COMPONENT back to the release its hosts ran before the last deploy."""
    _finish(engine.rollback(site_to_change(site, output), component, batch, _progress), output)


@click.command()
@click.argument("component")
@SITE_OPTION
@OUTPUT_OPTION
def releases(component: str, site: str | None, output: str) -> None:
    """What runs where: each host's current and previous release of COMPONENT."""
    found = engine.releases(site_to_read(site), component)
    if output == "json":
        emit_json([r.as_dict() for r in found])
        return
    table = Table(title=component)
    for column in ("host", "current", "previous", "active", "releases on host"):
        table.add_column(column)
    for r in found:
        table.add_row(r.host, r.current or "-", r.previous or "-",
                      "yes" if r.active else "[red]no[/]", ", ".join(r.releases))
    console.print(table)
