"""`opsctl mirror build|show|push`."""

from __future__ import annotations

from dataclasses import asdict

import click

from opsctl import audit
from opsctl.cli.options import OUTPUT_OPTION, SITE_OPTION, VIA_OPTION, site_to_change
from opsctl.cli.render import emit_json, err_console
from opsctl.mirror import build as mirror_build
from opsctl.mirror import push as mirror_push
from opsctl.mirror.show import describe


@click.group()
def mirror() -> None:
    """The offline apt mirror the hosts install from."""


@mirror.command()
@click.option("--refresh", is_flag=True, help="Rebuild even if the mirror covers the roles.")
def build(refresh: bool) -> None:
    """Download every package the roles name, with dependencies, into a signed flat repo."""
    result = mirror_build.build(refresh=refresh,
                                progress=lambda m: err_console.print(f"[dim]mirror:[/dim] {m}"))
    if result.rebuilt:
        audit.append("mirror.build", {"refresh": refresh},
                     f"ok: {result.packages} packages, {result.bytes} bytes")
        click.echo(f"mirror: {result.packages} packages ({result.bytes / 1e6:.0f} MB) in "
                   f"{result.path}, built in {result.seconds:.1f}s")
    else:
        click.echo(f"mirror: up to date ({result.packages} packages in {result.path})")


@mirror.command()
@OUTPUT_OPTION
def show(output: str) -> None:
    """What the mirror holds and whether it covers every role's packages."""
    info = describe()
    if output == "json":
        emit_json(info)
        return
    state = "current" if info["current"] else "STALE (run `opsctl mirror build`)"
    click.echo(f"mirror {info['path']}: {info['packages']} packages, "
               f"{info['bytes'] / 1e6:.0f} MB, built {info['built'] or 'never'}, {state}")
    for role, packages in info["roles"].items():
        click.echo(f"  {role}: {' '.join(packages)}")
    if info["missing"]:
        click.echo(f"  missing: {' '.join(info['missing'])}")


@mirror.command()
@SITE_OPTION
@VIA_OPTION
@OUTPUT_OPTION
def push(site: str | None, via: str | None, output: str) -> None:
    """Copy the mirror to site.mirror.host:site.mirror.path, sending only what changed."""
    loaded = site_to_change(site, output)
    host, path = mirror_push.require_mirror(loaded)
    args = {"site": loaded.name, "host": host, "path": path}
    try:
        result = mirror_push.push(
            loaded, via=via,
            progress=lambda m: err_console.print(f"[dim]mirror push:[/dim] {m}"))
    except Exception as exc:
        audit.append("mirror.push", args, f"failed: {exc}")
        raise
    audit.append("mirror.push", args, f"ok: sent {result.sent} files ({result.bytes_sent} "
                 f"bytes), deleted {result.deleted}, unchanged {result.unchanged}")
    if output == "json":
        emit_json(asdict(result))
        return
    click.echo(f"mirror {result.host}:{result.path}: sent {result.sent} files "
               f"({result.bytes_sent / 1e6:.1f} MB), deleted {result.deleted}, "
               f"{result.unchanged} unchanged, in {result.seconds:.1f}s")
