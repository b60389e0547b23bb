"""Running a playbook and showing it: the live view, the recap, the exit code.

Shared by `apply`, `up` and `harden` (and `runs show`'s recap).
"""

from __future__ import annotations

import sys

from rich.table import Table

from opsctl.apply import history
from opsctl.apply.events import HostEvent
from opsctl.apply.runner import ApplyRequest, stdout_path
from opsctl.apply.runner import apply as run_apply
from opsctl.cli.render import console, emit_json, err_console
from opsctl.site import Site

STYLE = {"changed": "yellow", "failed": "bold red", "unreachable": "bold red", "ok": "green"}


def show_event(event: HostEvent) -> None:
    """The live view: one line per host per task that changed something or failed."""
    if event.status in ("changed", "failed", "unreachable"):
        line = f"[{STYLE[event.status]}]{event.status:<11}[/] {event.host:<8} {event.task}"
        if event.message and event.status != "changed":
            line += f"  [dim]{event.message}[/dim]"
        err_console.print(line, highlight=False)


def recap(record: history.RunRecord) -> None:
    table = Table(title=f"run {record.id} ({record.engine}, {record.seconds}s)")
    for column in ("host", "status", "ok", "changed", "failed", "unreachable", "skipped"):
        table.add_column(column, justify="left" if column in ("host", "status") else "right")
    for host, tally in record.hosts.items():
        status = tally["status"]
        # A deploy's record has no task tallies, only each host's status and detail.
        table.add_row(host, f"[{STYLE.get(status, '')}]{status}[/]",
                      *(str(tally.get(k, "")) for k in ("ok", "changed", "failed",
                                                        "unreachable", "skipped")))
    console.print(table)
    if record.result == "error":
        console.print(f"[bold red]ansible-runner failed before any host ran[/] (rc {record.rc});"
                      f" see {stdout_path(record)}")
    elif record.failed_hosts:
        # each failed host's first failure, as the record keeps it (sudo refusals named)
        first = {}
        for failure in record.failures:
            first.setdefault(failure["host"], failure)
        for host in record.failed_hosts:
            if host in first:
                said = first[host]["message"]
                said = said if said.startswith(f"{host}: ") else f"{host}: {said}"
                console.print(f"  {said} (task: {first[host]['task']})", markup=False,
                              highlight=False)
        console.print(f"[bold red]failed:[/] {', '.join(record.failed_hosts)} — "
                      "`opsctl apply --retry-failed` runs them again")


def exit_for(record: history.RunRecord) -> None:
    if record.result != "ok":
        sys.exit(1)


def converge(site: Site, request: ApplyRequest, output: str) -> None:
    """Run the request's playbook on the site, render it, exit 1 when any host failed."""
    record = run_apply(site, request, on_event=show_event if output == "table"
                       else lambda _e: None)
    if output == "json":
        emit_json(record.as_dict())
    else:
        recap(record)
    exit_for(record)
