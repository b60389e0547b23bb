"""`opsctl apply`, `opsctl runs`, `opsctl up`."""

from __future__ import annotations

import click
from rich.table import Table

from opsctl.apply import history
from opsctl.apply.engine import ENGINES
from opsctl.apply.profile import load_events, profile
from opsctl.apply.runner import ApplyRequest, stdout_path
from opsctl.apply.up import up as run_up
from opsctl.cli.converge import converge, exit_for, recap, show_event
from opsctl.cli.options import (
    OUTPUT_OPTION,
    SITE_OPTION,
    VIA_OPTION,
    playbook_selection,
    site_to_change,
)
from opsctl.cli.render import console, emit_json, err_console


def _apply_options(func):
    options = [
        SITE_OPTION,
        VIA_OPTION,
        click.option("--playbook", default="site.yml", show_default=True,
                     help="Playbook under playbooks/."),
        playbook_selection(),
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


@click.command()
@_apply_options
@OUTPUT_OPTION
def apply(output: str, site: str | None, **kw) -> None:
    """Converge the site's hosts (exit 1 when any host failed or was unreachable)."""
    converge(site_to_change(site, output), _request(kw), output)


@click.group(invoke_without_command=True)
@click.option("--site", default=None, help="Only this site's runs.")
@OUTPUT_OPTION
@click.pass_context
def runs(ctx: click.Context, site: str | None, output: str) -> None:
    """The history of apply runs."""
    if ctx.invoked_subcommand:
        return
    records = history.runs_of(site)
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
    recap(record)
    for failure in record.failures:
        console.print(f"  {failure['host']}: {failure['task']}: {failure['message']}",
                      highlight=False)
    console.print(f"[dim]full output: {stdout_path(record)}[/dim]")


@runs.command("profile")
@click.argument("run_id", default="last")
@click.option("--top", type=click.IntRange(1, 500), default=15, show_default=True,
              help="How many of the dearest tasks to list.")
@OUTPUT_OPTION
def runs_profile(run_id: str, top: int, output: str) -> None:
    """Where a run's time went: each role's and the dearest tasks' wall time (RUN_ID or
    `last`), from the run's Ansible events."""
    record = history.resolve(run_id)
    found = profile(load_events(history.run_dir(record.id)))
    if output == "json":
        emit_json({"run": record.id, **found.as_dict(top)})
        return
    roles = Table(title=f"run {record.id}: {found.seconds} s, {len(found.tasks)} tasks, "
                        f"{found.before_first_task} s before the first")
    for column in ("role", "tasks", "seconds", "share", "hosts' seconds", "changed"):
        roles.add_column(column, justify="left" if column == "role" else "right")
    for r in found.roles():
        roles.add_row(r.role, str(r.tasks), f"{r.seconds:.1f}",
                      f"{100 * r.seconds / (found.seconds or 1):.0f}%",
                      f"{r.host_seconds:.1f}", str(r.changed))
    console.print(roles)
    tasks = Table(title=f"the {top} dearest tasks")
    for column in ("seconds", "role", "task", "where"):
        tasks.add_column(column, justify="right" if column == "seconds" else "left")
    for t in found.dearest(top):
        tasks.add_row(f"{t.seconds:.1f}", t.role, t.task, t.path)
    console.print(tasks)


@click.command()
@_apply_options
def up(site: str | None, **kw) -> None:
    """Build the offline mirror, bring the site up on the local lab, converge it."""
    loaded = site_to_change(site)
    result = run_up(loaded, _request(kw),
                    progress=lambda m: err_console.print(f"[dim]up:[/dim] {m}"),
                    on_event=show_event)
    recap(result.run)
    click.echo(f"site {loaded.name}: lab up in {result.lab.seconds:.1f}s, "
               f"converged in {result.run.seconds}s ({result.run.result})")
    exit_for(result.run)
