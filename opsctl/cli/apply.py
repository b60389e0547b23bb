"""`opsctl apply`, `opsctl runs`, `opsctl up`."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from opsctl.apply import history
from opsctl.apply.engine import ENGINES
from opsctl.apply.events import HostEvent
from opsctl.apply.runner import ApplyRequest, stdout_path
from opsctl.apply.runner import apply as run_apply
from opsctl.cli.render import OUTPUT_OPTION, VIA_OPTION, console, emit_json, err_console
from opsctl.site import load_site
from opsctl.up import up as run_up

SITE_OPTION = click.option("--site", default="reference", show_default=True,
                           help="Site name (inventory/NAME) or site directory.")
STYLE = {"changed": "yellow", "failed": "bold red", "unreachable": "bold red", "ok": "green"}


def _apply_options(func):
    options = [
        SITE_OPTION,
        VIA_OPTION,
        click.option("--playbook", default="site.yml", show_default=True,
                     help="Playbook under playbooks/."),
        click.option("--limit", "-l", multiple=True, help="Only these hosts or groups."),
        click.option("--tags", "-t", multiple=True, help="Only tasks with these tags."),
        click.option("--skip-tags", multiple=True, help="Skip tasks with these tags."),
        click.option("--check", is_flag=True, help="Dry run: report what would change."),
        click.option("--diff", is_flag=True, help="Show file differences."),
        click.option("--retry-failed", is_flag=True,
                     help="Only the hosts that failed or were unreachable in the last run."),
        click.option("--engine", type=click.Choice(ENGINES), default="auto", show_default=True,
                     help="mitogen when installed (auto), or plain SSH with pipelining."),
        click.option("--forks", type=click.IntRange(1, 100), default=10, show_default=True),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _request(kw: dict) -> ApplyRequest:
    return ApplyRequest(playbook=kw["playbook"], limit=tuple(kw["limit"]),
                        tags=tuple(kw["tags"]), skip_tags=tuple(kw["skip_tags"]),
                        check=kw["check"], diff=kw["diff"], retry_failed=kw["retry_failed"],
                        engine=kw["engine"], forks=kw["forks"], via=kw["via"])


def _show_event(event: HostEvent) -> None:
    """The live view: one line per host per task that changed something or failed."""
    if event.status in ("changed", "failed", "unreachable"):
        line = f"[{STYLE[event.status]}]{event.status:<11}[/] {event.host:<8} {event.task}"
        if event.message and event.status != "changed":
            line += f"  [dim]{event.message}[/dim]"
        err_console.print(line, highlight=False)


def _recap(record: history.RunRecord) -> None:
    table = Table(title=f"run {record.id} ({record.engine}, {record.seconds}s)")
    for column in ("host", "status", "ok", "changed", "failed", "unreachable", "skipped"):
        table.add_column(column, justify="left" if column in ("host", "status") else "right")
    for host, tally in record.hosts.items():
        status = tally["status"]
        table.add_row(host, f"[{STYLE.get(status, '')}]{status}[/]", str(tally["ok"]),
                      str(tally["changed"]), str(tally["failed"]), str(tally["unreachable"]),
                      str(tally["skipped"]))
    console.print(table)
    if record.result == "error":
        console.print(f"[bold red]ansible-runner failed before any host ran[/] (rc {record.rc});"
                      f" see {stdout_path(record)}")
    elif record.failed_hosts:
        console.print(f"[bold red]failed:[/] {', '.join(record.failed_hosts)} — "
                      "`opsctl apply --retry-failed` runs them again")


def _exit_for(record: history.RunRecord) -> None:
    if record.result != "ok":
        sys.exit(1)


@click.command()
@_apply_options
@OUTPUT_OPTION
def apply(output: str, site: str, **kw) -> None:
    """Converge the site's hosts (exit 1 when any host failed or was unreachable)."""
    loaded = load_site(site)
    record = run_apply(loaded, _request(kw), on_event=_show_event if output == "table"
                       else lambda _e: None)
    if output == "json":
        emit_json(record.as_dict())
    else:
        _recap(record)
    _exit_for(record)


@click.group(invoke_without_command=True)
@click.option("--site", default=None, help="Only this site's runs.")
@OUTPUT_OPTION
@click.pass_context
def runs(ctx: click.Context, site: str | None, output: str) -> None:
    """The history of apply runs."""
    if ctx.invoked_subcommand:
        return
    records = history.all_runs(site)
    if output == "json":
        emit_json([r.as_dict() for r in records])
        return
    table = Table()
    for column in ("id", "site", "playbook", "engine", "seconds", "result", "changed", "failed"):
        table.add_column(column, no_wrap=column in ("id", "site"))
    for r in records:
        what = r.request.get("playbook") or " ".join(  # deploy runs name what they rolled
            str(r.request.get(k, "")) for k in ("action", "component", "version"))
        table.add_row(r.id, r.site, what, r.engine, str(r.seconds),
                      r.result, str(r.changed), ", ".join(r.failed_hosts))
    console.print(table)


@runs.command("show")
@click.argument("run_id", default="last")
@OUTPUT_OPTION
def runs_show(run_id: str, output: str) -> None:
    """One run: per-host recap and failures (RUN_ID or `last`)."""
    record = history.resolve(run_id)
    if output == "json":
        emit_json(record.as_dict())
        return
    _recap(record)
    for failure in record.failures:
        console.print(f"  {failure['host']}: {failure['task']}: {failure['message']}",
                      highlight=False)
    console.print(f"[dim]full output: {stdout_path(record)}[/dim]")


@click.command()
@_apply_options
def up(site: str, **kw) -> None:
    """Build the offline mirror, bring the site up on the local lab, converge it."""
    loaded = load_site(site)
    result = run_up(loaded, _request(kw),
                    progress=lambda m: err_console.print(f"[dim]up:[/dim] {m}"),
                    on_event=_show_event)
    _recap(result.run)
    click.echo(f"site {loaded.name}: lab up in {result.lab.seconds:.1f}s, "
               f"converged in {result.run.seconds}s ({result.run.result})")
    _exit_for(result.run)
