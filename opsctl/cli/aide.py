"""`opsctl aide report` and `opsctl aide accept`."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click
from rich.console import Group
from rich.markup import escape
from rich.table import Table

from opsctl.aide.accept import AcceptResult, AcceptRun, accept
from opsctl.aide.report import AideReport, HostReport, report
from opsctl.cli.options import (
    OUTPUT_OPTION,
    SITE_OPTION,
    limit_option,
    site_to_change,
    site_to_read,
)
from opsctl.cli.render import console, emit_json, err_console

STATE_STYLE = {"clean": "green", "entries": "bold red", "failed": "bold red",
               "unreachable": "bold red", "no check": "yellow", "no aide": "dim"}


def _when(moment: float | None) -> str:
    if moment is None:
        return "-"
    return datetime.fromtimestamp(moment, UTC).strftime("%m-%d %H:%M")


def _entries(h: HostReport) -> list:
    lines: list = [f"[bold]{h.host}[/]: {len(h.entries)} entries in the last daily check"]
    lines += [f"  {e.change:<8} {escape(e.summary)}: {escape(e.path)}" for e in h.entries]
    if h.unlisted:
        lines.append(f"  [yellow]and {h.unlisted} more that the log does not list[/]")
    return lines


def render_report(found: AideReport) -> Group:
    table = Table(title=f"AIDE's last daily check: site {found.site} (times UTC)")
    for column in ("host", "state", "checked", "baseline", "exit", "found"):
        table.add_column(column, no_wrap=True)
    table.add_column("note")
    for h in found.hosts:
        style = STATE_STYLE.get(h.state, "yellow")
        read = h.exit_code is not None or any(h.counts.values())  # AIDE's outcome is known
        counts = ", ".join(f"{h.counts[k]} {k}" for k in ("added", "removed", "changed")
                           if h.counts[k])
        table.add_row(h.host, f"[{style}]{h.state}[/]", _when(h.checked), _when(h.baseline),
                      "-" if h.exit_code is None else str(h.exit_code),
                      (counts or "nothing") if read else "-",
                      "" if h.state == "no check" else escape(h.reason))
    parts: list = [table]
    for h in found.hosts:
        if h.entries or h.unlisted:
            parts += _entries(h)
    found_on = [h.host for h in found.hosts if h.state == "entries"]
    if found_on:
        parts.append("Review them; when they are the expected result of a change, accept them "
                     f"as the new baseline: opsctl aide accept {' '.join(found_on)} "
                     "--reason TEXT")
    return Group(*parts)


def _accepted_line(h: AcceptResult) -> str:
    counts = ", ".join(f"{h.counts[k]} {k}" for k in ("added", "removed", "changed"))
    if h.ok:
        check = h.check
        return (f"[green]ok[/] {h.host}: accepted {counts}; the new daily check is clean "
                f"(AIDE exit {check.exit_code if check else '-'}); audit record {h.audit_seq}")
    done = "new baseline installed, " if h.installed else "nothing installed, "
    return (f"[bold red]failed[/] {h.host}: {done}{escape(h.error)}; "
            f"audit record {h.audit_seq}")


def _progress(message: str) -> None:
    err_console.print(f"[dim]aide:[/dim] {escape(message)}", highlight=False)


@click.group()
def aide() -> None:
    """AIDE file integrity: what each host's daily check found, and accepting a reviewed
    change as the new baseline (docs/monitoring.md, OpsctlFileIntegrityChanged)."""


@aide.command("report")
@limit_option()
@SITE_OPTION
@OUTPUT_OPTION
def report_cmd(limit: tuple[str, ...], site: str | None, output: str) -> None:
    """Per host, what the last daily check said: when it ran, the baseline's time, AIDE's
    exit code, how many entries it found added, removed and changed, and each entry (read
    from /var/log/aide/aide.log over SSH). Exit 1 when a host has entries, its check failed
    or it could not be read; 0 when every host is clean (or has no check or no AIDE yet)."""
    found = report(site_to_read(site), limit)
    if output == "json":
        emit_json(found.as_dict())
    else:
        console.print(render_report(found), highlight=False)
    if not found.ok:
        sys.exit(1)


@aide.command("accept")
@click.argument("hosts", nargs=-1, required=True, metavar="HOST...")
@click.option("--reason", required=True, metavar="TEXT",
              help="Why the reviewed changes are accepted (the change, ticket or patch run "
                   "that made them); the audit record keeps it with the entries.")
@SITE_OPTION
@OUTPUT_OPTION
def accept_cmd(hosts: tuple[str, ...], reason: str, site: str | None, output: str) -> None:
    """Accept each reviewed host's files as they are now as its new AIDE baseline.

    One host at a time: `aide --update` (one scan: what differs, and the new database), the
    new database installed with the old one's owner and mode, the daily check and the status
    service run again so that OpsctlFileIntegrityChanged clears. The audit record
    (aide-accept) keeps the reason and exactly the entries the update accepted. A host that
    fails stops nothing else; exit 1 when any did. Review first: `opsctl aide report`.
    """
    done: AcceptRun = accept(site_to_change(site, output), hosts, reason, progress=_progress)
    if output == "json":
        emit_json(done.as_dict())
    else:
        for h in done.hosts:
            console.print(_accepted_line(h), highlight=False)
    if not done.ok:
        sys.exit(1)
