"""`opsctl patch`: rolling OS updates from the offline mirror."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from opsctl.cli.options import (
    OUTPUT_OPTION,
    SITE_OPTION,
    limit_option,
    site_to_change,
    site_to_read,
)
from opsctl.cli.render import console, emit_json, err_console
from opsctl.patch.check import CheckReport, check
from opsctl.patch.run import PatchRequest, PatchResult
from opsctl.patch.run import patch as run_patch

MAX_CVES_SHOWN = 4


def _progress(message: str) -> None:
    err_console.print(f"[dim]patch:[/dim] {message}", highlight=False)


def render_check(report: CheckReport) -> Table:
    table = Table(title=f"patch --check: {report.site} ({report.security_data})")
    for column in ("order", "host", "package", "installed → mirror", "fixes"):
        table.add_column(column)
    order = {h: i for i, b in enumerate(report.plan.batches, start=1) for h in b.hosts}
    for host in report.hosts:
        where = f"{order.get(host.host, '-')}"
        if host.error:
            table.add_row(where, host.host, "[red]not checked[/]", host.error, "")
            continue
        if not host.changes:
            table.add_row(where, host.host, "[green]up to date[/]", "", "")
        for c in host.changes:
            cves = [cve for cve, _ in host.fixes.get(c.package, ())]
            shown = ", ".join(cves[:MAX_CVES_SHOWN]) + (
                f", +{len(cves) - MAX_CVES_SHOWN}" if len(cves) > MAX_CVES_SHOWN else "")
            table.add_row(where, host.host, c.package, f"{c.before or '(new)'} → {c.after}", shown)
        for package in host.removals:
            table.add_row(where, host.host, package, "[red]would be removed: refused[/]", "")
        if host.kept_back:
            table.add_row(where, host.host, ", ".join(host.kept_back), "kept back (held)", "")
        if host.reboot:
            table.add_row(where, host.host, "[yellow]reboot[/]", host.reboot, "")
    return table


def _show_check(report: CheckReport, output: str) -> None:
    if output == "json":
        emit_json(report.as_dict())
    else:
        console.print(render_check(report))
        for host, why in report.plan.left_out:
            console.print(f"[yellow]left out[/] {host}: {why}", highlight=False)
    if not report.ok:
        sys.exit(1)


def _finish(result: PatchResult, output: str) -> None:
    record = result.record
    if output == "json":
        emit_json(result.as_dict())
    elif result.ok:
        console.print(f"[green]ok[/] run {record.id}: patched "
                      f"{', '.join(result.plan.hosts)} in {record.seconds}s")
    else:
        console.print(f"[bold red]failed[/] run {record.id}: {record.failures[0]['message']}",
                      highlight=False)
    if output != "json":
        for host, why in result.plan.left_out:
            console.print(f"[yellow]left out[/] {host}: {why}", highlight=False)
    if not result.ok:
        sys.exit(1)


@click.command()
@limit_option("Only these hosts or groups (repeat or comma-separate); the order stays "
              "the site's. A lone balancer or database host is patched only when named.",
              "HOSTS")
@click.option("--batch", type=click.IntRange(1, 100), default=1, show_default=True,
              help="Component hosts drained and upgraded at a time (database, backup, "
                   "monitoring and balancer hosts always go one at a time).")
@click.option("--check", "dry_run", is_flag=True,
              help="Change nothing: per host, what would be upgraded (before → after, the "
                   "CVEs each fixes) and whether it would be rebooted. Exit 0 when every "
                   "host answered, pending upgrades or not; 1 when a host could not be checked.")
@click.option("--reboot-timeout", type=click.IntRange(30, 7200), default=900,
              show_default=True, metavar="SECONDS",
              help="How long a rebooted host has to answer again (a physical server's "
                   "firmware alone can take minutes); past it the patch stops there.")
@SITE_OPTION
@OUTPUT_OPTION
def patch(limit: tuple[str, ...], batch: int, dry_run: bool, reboot_timeout: int,
          site: str | None, output: str) -> None:
    """Rolling OS updates from the offline mirror, keeping the platform serving.

    Component hosts are drained at the balancer and put back after their health checks; the
    database replica goes first, then a Patroni switchover, then the old leader; backup and
    monitoring hosts when no backup runs and no alert fires. A host is rebooted when it needs
    it (/run/reboot-required, a new kernel, libc or systemd) and must come back healthy
    before the next batch. Refused (exit 1, nothing changed) on an unhealthy site; stops at
    the first host that fails (exit 1), the rest untouched. Run `opsctl mirror build
    --refresh` (and `mirror push`) first to bring Debian's updates into the mirror.
    """
    if dry_run:
        _show_check(check(site_to_read(site), limit, batch), output)
        return
    loaded = site_to_change(site, output)
    request = PatchRequest(limit, batch, reboot_timeout=reboot_timeout)
    _finish(run_patch(loaded, request, _progress), output)
