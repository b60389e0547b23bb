"""`opsctl pki status` and `opsctl pki rotate`."""

from __future__ import annotations

import sys

import click
from rich.console import Group
from rich.table import Table

from opsctl.cli.converge import recap, show_event
from opsctl.cli.options import OUTPUT_OPTION, SITE_OPTION, VIA_OPTION, site_to_change, site_to_read
from opsctl.cli.render import console, emit_json, show_health
from opsctl.pki.certs import CertInfo
from opsctl.pki.rotate import RotationResult
from opsctl.pki.rotate import rotate as run_rotate
from opsctl.pki.status import PkiStatus
from opsctl.pki.status import status as pki_status

LIMIT_OPTION = click.option("--limit", "-l", multiple=True, metavar="HOST|GROUP",
                            help="Only these hosts or groups.")


def _left(info: CertInfo | None, status: PkiStatus) -> str:
    if info is None:
        return "-"
    days = info.days_left(status.now)
    colour = "bold red" if days < status.warn_days else "green"
    return f"[{colour}]{days:.0f}[/]"


def _cn(name: str) -> str:
    """A distinguished name's CN (the whole name when it has none)."""
    return next((part[3:] for part in name.split(",") if part.startswith("CN=")), name)


def _same(value: bool | None) -> str:
    return {True: "[green]yes[/]", False: "[bold red]no[/]"}.get(value, "[yellow]?[/]")


def render(status: PkiStatus) -> Group:
    ca = status.ca
    head = (f"site {status.site} CA: {ca.subject}, until {ca.not_after:%Y-%m-%d} "
            f"({_left(ca, status)} days), sha256 {ca.fingerprint[:16]}")
    files = Table(title="certificate files on the hosts")
    for column in ("host", "path", "used by", "subject / SANs", "issuer", "not after",
                   "days left", "deployed = issued"):
        files.add_column(column)
    ports = Table(title="what each service presents")
    for column in ("host", "service", "port", "sha256", "= issued"):
        ports.add_column(column)
    for h in status.hosts:
        if h.error:
            files.add_row(h.name, f"[bold red]{h.error}[/]", "", "", "", "", "", "")
            continue
        for f in h.files:
            d = f.deployed
            files.add_row(h.name, f.path, "\n".join(f.used_by),
                          f"{d.subject}\n{' '.join(d.sans)}" if d else f"[red]{f.error}[/]",
                          _cn(d.issuer) if d else "", f"{d.not_after:%Y-%m-%d}" if d else "",
                          _left(d, status), _same(f.matches))
        for p in h.presented:
            ports.add_row(h.name, p.service, str(p.port),
                          p.cert.fingerprint[:16] if p.cert else f"[red]{p.error}[/]",
                          _same(p.matches))
    parts: list = [head, files, ports]
    if status.problems:
        parts += ["[bold red]problems:[/]", *(f"  {line}" for line in status.problems)]
    else:
        parts.append("[green]every certificate current and as issued[/]")
    return Group(*parts)


@click.group()
def pki() -> None:
    """The site's certificates: what the hosts hold and present, and rotating them."""


@pki.command("status")
@SITE_OPTION
@LIMIT_OPTION
@VIA_OPTION
@OUTPUT_OPTION
def status(site: str | None, limit: tuple[str, ...], via: str | None, output: str) -> None:
    """Every certificate the site uses, per host and service: subject and SANs, issuer,
    expiry, whether the file on the host and what each service presents are the certificate
    the control node issued; and the site CA.

    Exit 1 when a certificate has expired or expires within 30 days, a host holds or a
    service presents another certificate than the one issued, a host certificate does not
    name the host's current address, or a host cannot be reached.
    """
    show_health(pki_status(site_to_read(site), limit, via), output, render)


def _render_rotation(result: RotationResult) -> None:
    recap(result.run)
    table = Table(title="services taking up the new certificate")
    for column in ("host", "service", "on a new certificate"):
        table.add_column(column)
    for step in result.plan.steps:
        table.add_row(step.host, step.service, {"none": "nothing (reads the new files itself)"}.get(
            step.action, step.action))
    console.print(table)
    if result.status is not None:
        console.print(render(result.status))
    elif result.problems:
        console.print("[bold red]" + "\n".join(result.problems) + "[/]", highlight=False)


@pki.command("rotate")
@SITE_OPTION
@LIMIT_OPTION
@click.option("--ca", is_flag=True, help="Roll the site CA over (not built yet).")
@VIA_OPTION
@OUTPUT_OPTION
def rotate(site: str | None, limit: tuple[str, ...], ca: bool, via: str | None,
           output: str) -> None:
    """Reissue the host certificates (new keys) on the control node, install them and make
    each service take them up (nginx, PostgreSQL and Patroni reload; rsyslog restarts; etcd
    and the monitoring agent read the new files by themselves), then check that every service
    presents the new certificate. Exit 1 when the apply failed or a service does not.
    """
    loaded = site_to_change(site, output)
    result = run_rotate(loaded, limit, ca=ca, via=via,
                        on_event=show_event if output == "table" else lambda _e: None)
    if output == "json":
        emit_json(result.as_dict())
    else:
        _render_rotation(result)
    if not result.ok:
        sys.exit(1)
