"""`opsctl pki status` and `opsctl pki rotate`."""

from __future__ import annotations

import sys

import click
from rich.console import Group
from rich.table import Table

from opsctl.cli.converge import recap, show_event
from opsctl.cli.options import (
    OUTPUT_OPTION,
    SITE_OPTION,
    VIA_OPTION,
    limit_option,
    site_to_change,
    site_to_read,
)
from opsctl.cli.render import console, emit_json, show_health
from opsctl.pki.certs import CertInfo, common_name
from opsctl.pki.generations import describe, next_command
from opsctl.pki.rollover import RolloverResult, roll
from opsctl.pki.rotate import RotationResult
from opsctl.pki.rotate import rotate as run_rotate
from opsctl.pki.status import PkiStatus, ca_names
from opsctl.pki.status import status as pki_status

LIMIT_OPTION = limit_option()


def _left(info: CertInfo | None, status: PkiStatus) -> str:
    if info is None:
        return "-"
    days = info.days_left(status.now)
    colour = "bold red" if days < status.warn_days else "green"
    return f"[{colour}]{days:.0f}[/]"


def _same(value: bool | None) -> str:
    return {True: "[green]yes[/]", False: "[bold red]no[/]"}.get(value, "[yellow]?[/]")


def render(status: PkiStatus) -> Group:
    ca = status.ca
    head = (f"site {status.site} CA: {ca.subject}, until {ca.not_after:%Y-%m-%d} "
            f"({_left(ca, status)} days), sha256 {ca.fingerprint[:16]}\n"
            f"the hosts must trust: {ca_names(status.trust)}"
            f"\n{describe(status.rollover)}")
    if status.rollover.in_progress:
        head += f"; next: {next_command(status.rollover)}"
    files = Table(title="certificate files on the hosts")
    for column in ("host", "path", "used by", "subject / SANs (a bundle: its CAs)",
                   "signed by", "not after", "days left", "deployed = issued"):
        files.add_column(column)
    ports = Table(title="what each service presents")
    for column in ("host", "service", "port", "sha256", "signed by", "= issued"):
        ports.add_column(column)
    for h in status.hosts:
        if h.error:
            files.add_row(h.name, f"[bold red]{h.error}[/]", "", "", "", "", "", "")
            continue
        for f in h.files:
            d = f.deployed
            what = ("\n".join(common_name(c.subject) for c in f.bundle) if f.bundle
                    else f"{d.subject}\n{' '.join(d.sans)}" if d else f"[red]{f.error}[/]")
            files.add_row(h.name, f.path, "\n".join(f.used_by), what,
                          common_name(d.issuer) if d and f.kind == "host" else "",
                          f"{d.not_after:%Y-%m-%d}" if d else "", _left(d, status),
                          _same(f.matches))
        for p in h.presented:
            ports.add_row(h.name, p.service, str(p.port),
                          p.cert.fingerprint[:16] if p.cert else f"[red]{p.error}[/]",
                          common_name(p.cert.issuer) if p.cert else "", _same(p.matches))
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


def _render_rollover(result: RolloverResult) -> None:
    console.print(f"before: {result.stood}", highlight=False)
    for done in result.steps:
        colour = "green" if done.result == "ok" else "bold red"
        run = f" (run {done.run})" if done.run else ""
        console.print(f"  [{colour}]{done.result}[/] {done.step}{run}", highlight=False)
    if result.steps and any(s.run for s in result.steps):
        table = Table(title="services taking up a new trust bundle")
        for column in ("host", "service", "on a new bundle"):
            table.add_column(column)
        for step in result.reloads:
            table.add_row(step.host, step.service, {
                "none": "nothing (reads it at each new connection)",
                "rolling-restart": "restart, one member at a time"}.get(step.action,
                                                                         step.action))
        console.print(table)
    if result.status is not None:
        console.print(render(result.status))
    if result.problems:
        console.print("[bold red]" + "\n".join(result.problems) + "[/]", highlight=False)
    console.print(f"now: {result.stands}\nnext: {result.next}", highlight=False)


@pki.command("rotate")
@SITE_OPTION
@LIMIT_OPTION
@click.option("--ca", is_flag=True,
              help="Roll the site CA over: a new CA trusted beside the old one everywhere, "
                   "then every host certificate reissued by it (docs/certificates.md).")
@click.option("--finish", is_flag=True,
              help="With --ca: the rollover's second step, once every certificate is the new "
                   "CA's: the old CA trusted nowhere any more.")
@VIA_OPTION
@OUTPUT_OPTION
def rotate(site: str | None, limit: tuple[str, ...], ca: bool, finish: bool, via: str | None,
           output: str) -> None:
    """Reissue the host certificates (new keys) on the control node, install them and make
    each service take them up (nginx, PostgreSQL and Patroni reload; rsyslog restarts; etcd
    and the monitoring agent read the new files by themselves), then check that every service
    presents the new certificate. Exit 1 when the apply failed or a service does not.

    --ca rolls the CA over in two commands: `--ca` (new CA B trusted with A on every host,
    then every certificate reissued by B) and `--ca --finish` (refused until every
    certificate is B's; then A is trusted nowhere). Either, run again after an interruption,
    takes up where it stopped; `pki status` says where a rollover stands.
    """
    if finish and not ca:
        raise click.BadOptionUsage("finish", "--finish goes with --ca")
    loaded = site_to_change(site, output)
    events = show_event if output == "table" else lambda _e: None
    if ca:
        rolled = roll(loaded, finish=finish, limit=limit, via=via, on_event=events)
        if output == "json":
            emit_json(rolled.as_dict())
        else:
            _render_rollover(rolled)
        sys.exit(0 if rolled.ok else 1)
    result = run_rotate(loaded, limit, via=via, on_event=events)
    if output == "json":
        emit_json(result.as_dict())
    else:
        _render_rotation(result)
    if not result.ok:
        sys.exit(1)
