"""`opsctl site validate|show|new|ssh-config|trust`."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from opsctl import audit
from opsctl.cli.render import OUTPUT_OPTION, VIA_OPTION, console, emit_json
from opsctl.connection import site_ssh_config as connection_config
from opsctl.hostkeys import HostKey, trust_site
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


@site.command("ssh-config")
@click.argument("name", default="reference")
@VIA_OPTION
def ssh_config(name: str, via: str | None) -> None:
    """Print the site's generated OpenSSH config: `ssh -F FILE HOST` reaches HOST as opsctl
    does (bastion, login user, port, key, pinned host keys)."""
    click.echo(connection_config(load_site(name), via), nl=False)


@site.command()
@click.argument("name", default="reference")
@VIA_OPTION
@click.option("--limit", "-l", multiple=True, help="Only these hosts.")
@click.option("--replace", metavar="HOST", help="Forget HOST's pinned key and pin the one it "
              "offers now (after a reinstall).")
@click.option("--known-hosts", "known_hosts", type=click.Path(dir_okay=False, path_type=Path),
              help="Import keys gathered out of band (ssh-keyscan output) instead of fetching.")
@click.option("--yes", "-y", is_flag=True, help="Pin without asking to confirm fingerprints.")
def trust(name: str, via: str | None, limit: tuple[str, ...], replace: str | None,
          known_hosts: Path | None, yes: bool) -> None:
    """Pin the hosts' SSH keys: fetched through the bastion and confirmed by fingerprint."""
    def confirm(keys: list[HostKey]) -> bool:
        for key in keys:
            click.echo(f"  {key.alias:<10} {key.type:<20} {key.fingerprint}")
        return yes or click.confirm(f"pin these {len(keys)} keys?", default=False)

    loaded = load_site(name)
    result = trust_site(loaded, via, list(limit), replace, known_hosts, confirm)
    audit.append("site.trust", {"site": loaded.name, "limit": list(limit), "replace": replace,
                                "known_hosts": str(known_hosts) if known_hosts else None},
                 f"pinned {len(result.pinned)}, unchanged {len(result.unchanged)}, "
                 f"refused {len(result.refused)}")
    for key in result.pinned:
        click.echo(f"pinned {key.alias} {key.fingerprint}")
    if result.unchanged:
        click.echo(f"already pinned, unchanged: {', '.join(result.unchanged)}")
    if result.refused:
        click.echo(f"not pinned: {', '.join(result.refused)}")
        raise SystemExit(1)
