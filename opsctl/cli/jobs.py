"""`opsctl jobs list|run NAME|history [NAME]`."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click
from rich.table import Table

from opsctl.cli.options import OUTPUT_OPTION, SITE_OPTION, site_to_change, site_to_read
from opsctl.cli.render import console, emit_json
from opsctl.jobs.catalog import find_job, list_jobs
from opsctl.jobs.fleet import FleetAnswer, job_history, run_job
from opsctl.transport import for_site


@click.group()
def jobs() -> None:
    """Scheduled jobs: what runs where and when, run one now, recent runs."""


@jobs.command("list")
@SITE_OPTION
@OUTPUT_OPTION
def list_cmd(site: str | None, output: str) -> None:
    """Every job with its schedule, next fire time (in its time zone), group and hosts."""
    rows = list_jobs(site_to_read(site), datetime.now(UTC))
    if output == "json":
        emit_json([r.as_dict() for r in rows])
        return
    table = Table(title=f"{len(rows)} jobs", title_justify="left")
    for column in ("job", "schedule", "next fire"):
        table.add_column(column, no_wrap=True)
    table.add_column("runs on", overflow="fold")
    for r in rows:
        # the next fire time in the job's own zone, with its UTC offset
        when = (r.next_fire[:16].replace("T", " ") + r.next_fire[19:]) if r.next_fire \
            else "[yellow]disabled[/]"
        hosts = f"{r.group}: {', '.join(r.hosts)}" + (" (one at a time)" if r.singleton else "")
        table.add_row(r.name, r.schedule, when, hosts)
    console.print(table)


def _render(answer: FleetAnswer, output: str, rows_of) -> None:
    if output == "json":
        emit_json(answer.as_dict())
    else:
        for a in answer.answers:
            if not a.ok and a.data is None:
                console.print(f"[red]{a.host}: {a.error}[/]")
                continue
            for line in rows_of(a):
                console.print(f"{a.host}  {line}", highlight=False)
    if not answer.ok:
        sys.exit(1)


@jobs.command("run")
@click.argument("name")
@SITE_OPTION
@click.option("--host", "hosts", multiple=True, help="Only on this host (repeatable).")
@OUTPUT_OPTION
def run_cmd(name: str, site: str | None, hosts: tuple[str, ...], output: str) -> None:
    """Run a job now on the hosts of its group (over SSH); exit 1 if any run failed."""
    loaded = site_to_change(site, output)
    find_job(loaded, name)  # an unknown job is bad input before any host is asked
    answer = run_job(loaded, name, for_site(loaded), list(hosts) or None)
    _render(answer, output, lambda a: [f"{a.data.get('outcome')}  {a.data.get('reason', '')}"])


@jobs.command("history")
@click.argument("name", required=False)
@SITE_OPTION
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@OUTPUT_OPTION
def history_cmd(name: str | None, site: str | None, limit: int, output: str) -> None:
    """Recent runs recorded on the hosts (all jobs, or one)."""
    loaded = site_to_read(site)
    if name is not None:
        find_job(loaded, name)
    answer = job_history(loaded, name, for_site(loaded), limit)
    _render(answer, output, lambda a: [
        f"{r['started_iso'][:19]}  {r['job']}  #{r['attempt']}  {r['outcome']}  "
        f"{'-' if r['duration'] is None else format(r['duration'], '.1f') + 's'}  {r['reason']}"
        for r in a.data])
