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
@click.option("--security-data", metavar="FILE|URL",
              help="Debian's security tracker JSON to carry (gathered out of band); default: "
                   "fetched from the tracker ($OPSCTL_SECURITY_DATA_URL overrides).")
def build(refresh: bool, security_data: str | None) -> None:
    """Download every package the roles name, with dependencies, into a signed flat repo,
    with Debian's security data for bookworm."""
    result = mirror_build.build(refresh=refresh, security_data=security_data,
                                progress=lambda m: err_console.print(f"[dim]mirror:[/dim] {m}"))
    if result.security is not None:
        click.echo(f"mirror: {result.security.message}")
    if result.rebuilt or result.security is not None:
        audit.append("mirror.build", {"refresh": refresh, "security_data": security_data},
                     f"ok: {result.packages} packages, {result.bytes} bytes; security data "
                     f"{result.security.state if result.security else 'unchanged'}")
    if result.rebuilt:
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
    data = info["security_data"]
    click.echo(f"  security data: {data['release']}, fetched {data['fetched']} "
               f"({data['source_packages']} source packages, {data['fixed_cves']} fixed CVEs)"
               if data else "  security data: none (run `opsctl mirror build`)")
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
