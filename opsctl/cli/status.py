"""`opsctl status [--site] [-o json] [--watch SECONDS]`."""

from __future__ import annotations

import time

import click
from rich.console import Group
from rich.live import Live
from rich.table import Table

from opsctl.cli.options import OUTPUT_OPTION, SITE_OPTION, VIA_OPTION, site_to_read
from opsctl.cli.render import console, show_health
from opsctl.status.fetch import fetch
from opsctl.status.view import SiteStatus


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _system(state: str | None) -> str:
    if state is None:
        return "[yellow]?[/]"
    return {"running": "[green]running[/]", "degraded": "[bold red]degraded[/]"}.get(
        state, f"[yellow]{state}[/]")


def render(status: SiteStatus) -> Group:
    hosts = Table(title=f"site {status.site} ({status.prometheus})")
    for column in ("host", "zone", "agent", "systemd", "load1", "mem avail", "fullest fs",
                   "failed units", "compliance"):
        hosts.add_column(column)
    for h in status.hosts:
        agent = {"up": "[green]up[/]", "down": "[bold red]down[/]"}.get(h.agent, "[yellow]?[/]")
        fullest = f"{h.fullest_mount} {_pct(h.fullest_used)}" if h.fullest_mount else "-"
        hosts.add_row(h.name, h.zone, agent, _system(h.system_state),
                      "-" if h.load1 is None else f"{h.load1:.2f}",
                      _pct(h.memory_available), fullest,
                      "[red]" + ", ".join(h.failed_units) + "[/]" if h.failed_units else "-",
                      _pct(h.compliance))
    parts: list = [hosts, *_disabled(status), *_platform(status)]
    if status.alerts:
        alerts = Table(title="alerts firing")
        for column in ("severity", "alert", "host", "since", "summary"):
            alerts.add_column(column)
        for a in status.alerts:
            style = "bold red" if a.severity == "critical" else "yellow"
            alerts.add_row(f"[{style}]{a.severity}[/]", a.name, a.host, a.since[:19], a.summary)
        parts.append(alerts)
    else:
        parts.append("[green]no alerts firing[/]")
    return Group(*parts)


def _disabled(status: SiteStatus) -> list:
    """Units left off on purpose, apart from the failed ones: not a fault, but said."""
    rows = [(h.name, d.unit, d.reason) for h in status.hosts for d in h.disabled_by_design]
    if not rows:
        return []
    table = Table(title="units disabled by design")
    for column in ("host", "unit", "reason"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    return [table]


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def _platform(status: SiteStatus) -> list:
    """The database cluster, backups and failing jobs, each a line or a small table."""
    parts: list = []
    if status.database:
        db = Table(title="database cluster")
        for column in ("host", "role", "replica", "streaming", "lag"):
            db.add_column(column)
        for server in status.database:
            style = {"primary": "green", "replica": "green"}.get(server.role, "bold red")
            replicas = [r for r in status.replicas if r.primary == server.host]
            if not replicas:
                db.add_row(server.host, f"[{style}]{server.role}[/]", "", "", "")
            for r in replicas:
                lag = ("-" if r.lag_bytes is None else
                       f"{r.lag_bytes / 1024:.0f} KiB / {r.lag_seconds or 0:.1f} s")
                ok = "[green]yes[/]" if r.streaming else "[bold red]no[/]"
                db.add_row(server.host, f"[{style}]{server.role}[/]", r.name, ok,
                           lag if r.healthy or not r.streaming else f"[red]{lag}[/]")
        parts.append(db)
    for b in status.backups:
        age, policy = _age(b.newest_age_seconds), _age(b.max_age_seconds)
        colour = "green" if b.healthy else "bold red"
        parts.append(f"[{colour}]backup {b.stanza} on {b.host}: newest {age} old "
                     f"(policy {policy})[/]")
    if status.failing_jobs:
        parts.append("[bold red]jobs failing: " + ", ".join(
            f"{j.job} on {j.host} ({j.consecutive_failures}x)" for j in status.failing_jobs)
            + "[/]")
    elif status.database or status.backups:
        parts.append("[green]no job failing[/]")
    return parts


@click.command()
@SITE_OPTION
@click.option("--watch", type=click.FloatRange(min=1), metavar="SECONDS",
              help="Refresh every SECONDS until interrupted.")
@VIA_OPTION
@OUTPUT_OPTION
def status(site: str | None, watch: float | None, via: str | None, output: str) -> None:
    """The site at a glance: hosts, resources, systemd's state and every failed unit,
    the units left off by design with the reason, compliance, the database cluster (primary,
    replicas, lag), newest backup age against the policy, failing jobs, alerts firing.

    Exit 1 when a host or database server is down, a unit failed, a host's systemd is not
    running (degraded, starting, …), a replica does not stream or lags, the newest backup is
    older than the policy, a job is failing or an alert fires.
    """
    loaded = site_to_read(site)
    if watch and output == "table":
        with Live(render(fetch(loaded, via=via)), console=console, auto_refresh=False) as live:
            while True:
                time.sleep(watch)
                live.update(render(fetch(loaded, via=via)), refresh=True)
    show_health(fetch(loaded, via=via), output, render)
