"""`opsctl site validate|show|new|boundary`."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from opsctl import audit
from opsctl.cli.render import OUTPUT_OPTION, console, emit_json
from opsctl.network.export import export_boundary
from opsctl.site import load_site
from opsctl.site.describe import describe
from opsctl.site.new import new_site


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


@site.command("new")
@click.argument("name")
@click.option("--from", "source", default="reference", show_default=True,
              help="The site whose topology to copy.")
@click.option("--cidr-base", help="Network to carve the zones from, in the source's zone "
              "order (default: the highest free block of 172.31.0.0/16).")
@click.option("--host-prefix", help="New host names are PREFIX-<host> (default: NAME).")
@click.option("--national-gateway", help="Address of the national node's access gateway for "
              "the uplink flow (default: the source's load balancer; `none` for no uplink).")
def new(name: str, source: str, cidr_base: str | None, host_prefix: str | None,
        national_gateway: str | None) -> None:
    """Write inventory/NAME: a province's copy of the source site's topology."""
    made = new_site(name, source, cidr_base, host_prefix, national_gateway)
    audit.append("site.new", {"name": name, "from": source, "cidr_base": cidr_base},
                 f"ok: {made.directory}")
    click.echo(f"site {made.name}: wrote {made.directory} ({len(made.hosts)} hosts)")
    for zone, cidr in made.zones.items():
        click.echo(f"  {zone:9s} {cidr}")
    click.echo(f"next: opsctl lab up --site {made.name} && opsctl apply --site {made.name}")


@site.command()
@click.argument("name", default="reference")
@click.option("--format", "fmt", default="nftables", show_default=True,
              metavar="nftables|csv|md", help="nftables: the ruleset itself (what the lab's "
              "router runs); csv, md: one row per rule for a device that is not nftables.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of standard output.")
def boundary(name: str, fmt: str, out_file: Path | None) -> None:
    """The boundary firewall's ruleset for the network team to install (default drop + log)."""
    text = export_boundary(load_site(name), fmt)
    if out_file is None:
        click.echo(text, nl=False)
        return
    out_file.write_text(text, encoding="utf-8")
    click.echo(f"wrote {out_file}", err=True)
