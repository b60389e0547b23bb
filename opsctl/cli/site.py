"""`opsctl site validate|show`."""

from __future__ import annotations

import click
from rich.table import Table

from opsctl.cli.render import OUTPUT_OPTION, console, emit_json
from opsctl.site import load_site
from opsctl.site.describe import describe


@click.group()
def site() -> None:
    """Inspect and validate a site (one node's inventory and site.yml)."""


@site.command()
@click.argument("name", default="reference")
def validate(name: str) -> None:
    """Check a site's inventory and site.yml; every problem on its own line, exit 2."""
    loaded = load_site(name)
    click.echo(f"site {loaded.name}: valid ({len(loaded.hosts)} hosts, {len(loaded.zones)} zones, "
               f"{len(loaded.flows)} flows, {len(loaded.jobs)} jobs)")


@site.command()
@click.argument("name", default="reference")
@OUTPUT_OPTION
def show(name: str, output: str) -> None:
    """Hosts by zone, with their addresses and groups."""
    data = describe(load_site(name))
    if output == "json":
        emit_json(data)
        return
    for zone in data["zones"]:
        table = Table(title=f"{zone['name']}  {zone['cidr']}  {zone['purpose']}",
                      title_justify="left")
        table.add_column("host")
        table.add_column("address")
        table.add_column("groups")
        for host in zone["hosts"]:
            table.add_row(host["name"], host["address"], ", ".join(host["groups"]))
        console.print(table)
