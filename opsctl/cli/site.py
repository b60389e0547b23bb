"""`opsctl site validate|show|new|enrol|withdraw|use|ssh-config|trust|boundary|password`."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import click
from rich.table import Table

from opsctl import audit
from opsctl.admin import password as admin_password
from opsctl.cli.options import OUTPUT_OPTION, VIA_OPTION, limit_option, site_to_read
from opsctl.cli.render import console, emit_json
from opsctl.connection import site_ssh_config
from opsctl.hostkeys import HostKey, trust_site
from opsctl.network.export import export_boundary
from opsctl.paths import write_named_file
from opsctl.site.current import ENV, choice_file, forget, resolve, stored, use
from opsctl.site.describe import describe
from opsctl.site.enrol import enrol, withdraw
from opsctl.site.new import new_site


@click.group()
def site() -> None:
    """Inspect and validate a site (one node's inventory and site.yml)."""


@site.command()
@click.argument("name", required=False)
def validate(name: str | None) -> None:
    """Check a site's inventory and site.yml; every problem on its own line, exit 2.

    NAME is a site name or directory; without it, the site every command would act on."""
    loaded = site_to_read(name)
    click.echo(f"site {loaded.name}: valid ({len(loaded.hosts)} hosts, {len(loaded.zones)} zones, "
               f"{len(loaded.flows)} flows, {len(loaded.jobs)} jobs)")


@site.command()
@click.argument("name", required=False)
@OUTPUT_OPTION
def show(name: str | None, output: str) -> None:
    """Hosts by zone, with their addresses and groups (NAME as for `site validate`)."""
    data = describe(site_to_read(name))
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


NATIONAL_OPTION = click.option("--national", default="reference", show_default=True,
                               help="The national node's site.")


@site.command("enrol")
@click.argument("province")
@NATIONAL_OPTION
@click.option("--upload-interval-hours", type=click.FloatRange(min=0, min_open=True),
              default=24.0, show_default=True,
              help="How often the province is expected to upload (when it is new to the list).")
def enrol_cmd(province: str, national: str, upload_interval_hours: float) -> None:
    """Join PROVINCE to the national view: both sites' files, its credential, the national CA.

    The national site gets the province (provinces, its uplink's sources and the flow to the
    balancer) and the province gets site.national and its push credential; then `opsctl
    apply` on each (docs/national-view.md)."""
    made = enrol(province, national, upload_interval_hours)
    audit.append("site.enrol", {"province": province, "national": national},
                 "ok: changed" if made.changed else "ok: unchanged")
    click.echo(f"site {made.province}: {'enrolled in' if made.changed else 'already enrolled in'}"
               f" {made.national}, pushing to {made.url}")
    for name, cidr in made.sources.items():
        click.echo(f"  {made.national}: external {name} {cidr}, flow {made.flow}")
    click.echo(f"next: opsctl apply --site {made.national} && opsctl apply --site {made.province}")


@site.command("withdraw")
@click.argument("province")
@NATIONAL_OPTION
def withdraw_cmd(province: str, national: str) -> None:
    """Take PROVINCE out of the national view: what `site enrol` wrote, on both sides."""
    done = withdraw(province, national)
    audit.append("site.withdraw", {"province": province, "national": national},
                 f"ok: {len(done.removed)} removed")
    if not done.removed:
        click.echo(f"site {done.province}: not enrolled in {done.national}; nothing to remove")
        return
    for item in done.removed:
        click.echo(f"  removed {item}")
    click.echo(f"next: opsctl apply --site {done.national}")


@site.command("use")
@click.argument("name", required=False)
@click.option("--clear", is_flag=True, help="Forget the stored default.")
@OUTPUT_OPTION
def use_cmd(name: str | None, clear: bool, output: str) -> None:
    """Make NAME (a site name or directory) the site commands act on when --site is not
    given. Without NAME: the site they act on now, and where that choice comes from."""
    if name and clear:
        raise click.UsageError("give NAME or --clear, not both")
    if clear:
        had = stored()
        if forget():
            audit.append("site.use", {"clear": True}, f"ok: forgot {had}")
        click.echo(f"no stored site (forgot {had})" if had else "no stored site")
        return
    if name:
        value, loaded = use(name)
        audit.append("site.use", {"site": value}, "ok")
        click.echo(f"site {loaded.name}: commands without --site act on it ({choice_file()})")
        if os.environ.get(ENV, "").strip():
            click.echo(f"note: {ENV} is set in this shell and wins over it", err=True)
        return
    choice = resolve(None)
    if output == "json":
        emit_json(choice.as_dict())
    else:
        click.echo(f"site {choice.site} ({choice.how})")


@site.command("ssh-config")
@click.argument("name", required=False)
@VIA_OPTION
def ssh_config(name: str | None, via: str | None) -> None:
    """Print the site's generated OpenSSH config: `ssh -F FILE HOST` reaches HOST as opsctl
    does (bastion, login user, port, key, pinned host keys)."""
    click.echo(site_ssh_config(site_to_read(name), via), nl=False)


@site.command()
@click.argument("name", required=False)
@VIA_OPTION
@limit_option("Only these hosts (repeat or comma-separate).", "HOST")
@click.option("--replace", metavar="HOST", help="Forget HOST's pinned key and pin the one it "
              "offers now (after a reinstall).")
@click.option("--known-hosts", "known_hosts", type=click.Path(dir_okay=False, path_type=Path),
              help="Import keys gathered out of band (ssh-keyscan output) instead of fetching.")
@click.option("--yes", "-y", is_flag=True, help="Pin without asking to confirm fingerprints.")
def trust(name: str | None, via: str | None, limit: tuple[str, ...], replace: str | None,
          known_hosts: Path | None, yes: bool) -> None:
    """Pin the hosts' SSH keys: fetched through the bastion and confirmed by fingerprint."""
    def confirm(keys: list[HostKey]) -> bool:
        for key in keys:
            click.echo(f"  {key.alias:<10} {key.type:<20} {key.fingerprint}")
        return yes or click.confirm(f"pin these {len(keys)} keys?", default=False)

    loaded = site_to_read(name)
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


@site.command()
@click.argument("name", required=False)
@click.option("--format", "fmt", default="nftables", show_default=True,
              metavar="nftables|csv|md", help="nftables: the ruleset itself (what the lab's "
              "router runs); csv, md: one row per rule for a device that is not nftables.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of standard output.")
def boundary(name: str | None, fmt: str, out_file: Path | None) -> None:
    """The boundary firewall's ruleset for the network team to install (default drop + log)."""
    text = export_boundary(site_to_read(name), fmt)
    if out_file is None:
        click.echo(text, nl=False)
        return
    write_named_file(out_file, text)
    click.echo(f"wrote {out_file}", err=True)


@site.group()
def password() -> None:
    """The admin's password on every host: how long it keeps working, and a new one."""


def _day(value: object) -> str:
    return "-" if value is None else str(value)


@password.command("status")
@click.argument("name", required=False)
@VIA_OPTION
@OUTPUT_OPTION
def password_status(name: str | None, via: str | None, output: str) -> None:
    """When the admin's password expires and the account is disabled on each host, and
    whether each host has the site's password. Exit 1 when a host is within
    14 days of expiry, past it, or differs."""
    ages = admin_password.status(site_to_read(name), via)
    if output == "json":
        emit_json([dataclasses.asdict(a) for a in ages])
    else:
        table = Table()
        for column in ("host", "user", "changed", "expires", "days left", "disabled from",
                       "site's", "state"):
            table.add_column(column)
        for a in ages:
            table.add_row(a.host, a.user, _day(a.last_change), _day(a.expires),
                          _day(a.days_left), _day(a.disabled),
                          {True: "yes", False: "NO", None: "?"}[a.matches_site],
                          a.state + (f": {a.error}" if a.error else ""))
        console.print(table)
    if not all(a.ok for a in ages):
        raise SystemExit(1)


@password.command("rotate")
@click.argument("name", required=False)
@VIA_OPTION
def password_rotate(name: str | None, via: str | None) -> None:
    """A new admin password on every host at once (all or none), kept where the site's
    connection keeps it; on a site that types it (become.password: prompt), asks for it."""
    def ask(text: str) -> str:
        return click.prompt(text, hide_input=True, confirmation_prompt=True, err=True)

    done = admin_password.rotate(site_to_read(name), via, prompt_new=ask)
    where = f", kept in {done.password_file}" if done.password_file else ""
    click.echo(f"{done.user}: new password on {len(done.hosts)} hosts of {done.site}{where}")
