"""`opsctl lab up|down|status|ssh|stop`."""

from __future__ import annotations

import subprocess

import click
from rich.table import Table

from opsctl import audit
from opsctl.cli.options import OUTPUT_OPTION, SITE_OPTION, announce, site_to_change, site_to_read
from opsctl.cli.render import console, emit_json, err_console
from opsctl.lab import lifecycle
from opsctl.site import load_site
from opsctl.site.current import resolve


def _progress(message: str) -> None:
    err_console.print(f"[dim]lab:[/dim] {message}")


@click.group()
def lab() -> None:
    """The local lab: the site's hosts as containers on this machine."""


@lab.command()
@SITE_OPTION
def up(site: str | None) -> None:
    """Bring the site's hosts up (idempotent: a second call changes nothing)."""
    loaded = site_to_change(site)
    try:
        result = lifecycle.up(loaded, _progress)
    except Exception as exc:
        audit.append("lab.up", {"site": loaded.name}, f"failed: {exc}")
        raise
    audit.append("lab.up", {"site": loaded.name},
                 f"ok: booted {len(result.booted)}, already running {len(result.already_running)}")
    click.echo(f"lab {result.site}: up in {result.seconds:.1f}s "
               f"(booted {len(result.booted)}, already running {len(result.already_running)}"
               f"{', base image built' if result.image_built else ''})")


@lab.command()
@SITE_OPTION
def down(site: str | None) -> None:
    """Remove everything `lab up` made: containers, namespaces, links, mounts, processes."""
    choice = resolve(site)
    try:
        loaded = load_site(choice.site)
        name = loaded.name
    except Exception:
        loaded, name = None, choice.site
    announce(choice.announcement(loaded))
    result = lifecycle.down(name, loaded, _progress)
    audit.append("lab.down", {"site": name},
                 f"ok: stopped {len(result.stopped)}, removed {len(result.removed_netns)} netns")
    click.echo(f"lab {name}: down (stopped {len(result.stopped)} containers, "
               f"removed {len(result.removed_netns)} namespaces)")


@lab.command()
@SITE_OPTION
@OUTPUT_OPTION
def status(site: str | None, output: str) -> None:
    """Each host: container running, SSH reachable, systemd state."""
    hosts = lifecycle.status(site_to_read(site))
    if output == "json":
        emit_json([h.as_dict() for h in hosts])
    else:
        table = Table("host", "zone", "address", "container", "ssh", "systemd")
        for h in hosts:
            table.add_row(h.name, h.zone, h.address, h.container, "yes" if h.ssh else "no",
                          h.systemd)
        console.print(table)
    raise SystemExit(0 if all(h.ssh for h in hosts) else 1)


@lab.command(context_settings={"ignore_unknown_options": True})
@SITE_OPTION
@click.argument("host")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def ssh(site: str | None, host: str, command: tuple[str, ...]) -> None:
    """A shell on HOST as its admin (ops; `sudo -i` for root), or run COMMAND there (after
    --) as ops and exit with its code."""
    argv = lifecycle.ssh_command(site_to_read(site), host, list(command))
    raise SystemExit(subprocess.call(argv))


@lab.command()
@SITE_OPTION
@click.argument("host")
def stop(site: str | None, host: str) -> None:
    """Power one host off, as if it failed; `lab up` boots it again."""
    loaded = site_to_change(site)
    name = loaded.name
    stopped = lifecycle.stop_host(loaded, host)
    audit.append("lab.stop", {"site": name, "host": host}, "ok" if stopped else "not running")
    click.echo(f"{host}: {'stopped' if stopped else 'was not running'}")


@lab.command()
@SITE_OPTION
@OUTPUT_OPTION
@click.option("--all", "show_all", is_flag=True, help="List every probe, not only mismatches.")
def flows(site: str | None, output: str, show_all: bool) -> None:
    """Probe the flow matrix: whitelisted flows connect, everything else is dropped."""
    results = lifecycle.check_flows(site_to_read(site))
    bad = [r for r in results if not r.ok]
    if output == "json":
        emit_json([r.as_dict() for r in results])
    else:
        shown = results if show_all else bad
        if shown:
            table = Table("from", "to", "port", "expected", "outcome", "flow")
            for r in shown:
                d = r.as_dict()
                table.add_row(d["from"], f"{d['to']} {d['address']}", str(d["port"]),
                              d["expect"], d["outcome"], d["flow"] or "-")
            console.print(table)
        opened = sum(r.connected for r in results)
        click.echo(f"{len(results)} probes: {opened} connected, {len(results) - opened} refused; "
                   f"{len(bad)} differ from the whitelist")
    raise SystemExit(1 if bad else 0)
