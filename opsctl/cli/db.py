"""`opsctl db status|switchover|failover`: the database cluster under Patroni."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from opsctl.cli.options import OUTPUT_OPTION, SITE_OPTION, site_to_change, site_to_read
from opsctl.cli.render import console, emit_json
from opsctl.db import ops
from opsctl.db.cluster import ClusterStatus

TO_OPTION = click.option("--to", "to", default=None, metavar="HOST",
                         help="The member to promote (default: the synchronous replica).")
MAX_LAG_OPTION = click.option("--max-lag", type=click.IntRange(min=0),
                              default=ops.DEFAULT_MAX_LAG, show_default=True,
                              help="Refuse when the candidate is further behind (bytes).")
TIMEOUT_OPTION = click.option("--timeout", type=click.FloatRange(min=1), default=120,
                              show_default=True, help="Seconds to wait for the new leader.")


def _none(value: object) -> str:
    return "-" if value is None else str(value)


def _render(st: ClusterStatus) -> None:
    leader = st.leader
    table = Table(title=f"leader {leader.name if leader else 'NONE'}"
                        f"{', paused' if st.paused else ''}")
    for column in ("member", "host", "role", "state", "TL", "lag bytes", "lag s", "restart"):
        table.add_column(column)
    for m in st.members:
        table.add_row(m.name, m.host, m.role, m.state, _none(m.timeline),
                      "" if m.is_leader else _none(m.lag_bytes),
                      "" if m.is_leader or m.lag_seconds is None else f"{m.lag_seconds:.3f}",
                      "pending" if m.pending_restart else "")
    console.print(table)
    if st.slots:
        click.echo("slots: " + ", ".join(
            f"{s.name} ({'active' if s.active else 'INACTIVE'}, {_none(s.retained_bytes)} B held)"
            for s in st.slots))
    if st.connections:
        click.echo("connections: " + ", ".join(f"{d} {n}" for d, n in st.connections.items()))
    if st.archiver:
        a = st.archiver
        click.echo(f"last archived WAL: {_none(a.last_archived_wal)} at "
                   f"{_none(a.last_archived_time)} (failures {a.failed_count})")
    for problem in st.problems():
        click.echo(f"PROBLEM: {problem}")


@click.group()
def db() -> None:
    """The database cluster (Patroni): status, switchover, failover."""


@db.command("status")
@SITE_OPTION
@MAX_LAG_OPTION
@OUTPUT_OPTION
def status_cmd(site: str | None, max_lag: int, output: str) -> None:
    """Members, leader, lag, timeline, slots, connections, archiving (exit 1 if unhealthy)."""
    st = ops.status(site_to_read(site))
    if output == "json":
        emit_json(st.as_dict(max_lag))
    else:
        _render(st)
    sys.exit(1 if st.problems(max_lag) else 0)


def _switch_cmd(fn, site: str | None, to: str | None, max_lag: int, timeout: float,
                output: str) -> None:
    done = fn(site_to_change(site, output), to=to, max_lag=max_lag, timeout=timeout)
    if output == "json":
        emit_json(done.as_dict())
        return
    healthy = ("" if done.seconds_to_healthy is None
               else f", cluster healthy after {done.seconds_to_healthy:.1f} s")
    click.echo(f"{done.action}: {done.old_leader or '(no leader)'} -> {done.new_leader}; "
               f"new leader after {done.seconds_to_leader:.1f} s{healthy}")


@db.command("switchover")
@SITE_OPTION
@TO_OPTION
@MAX_LAG_OPTION
@TIMEOUT_OPTION
@OUTPUT_OPTION
def switchover_cmd(site: str | None, to: str | None, max_lag: int, timeout: float,
                   output: str) -> None:
    """Planned: hand the leadership to a caught-up synchronous replica (no commit lost)."""
    _switch_cmd(ops.switchover, site, to, max_lag, timeout, output)


@db.command("failover")
@SITE_OPTION
@TO_OPTION
@MAX_LAG_OPTION
@TIMEOUT_OPTION
@OUTPUT_OPTION
def failover_cmd(site: str | None, to: str | None, max_lag: int, timeout: float,
                 output: str) -> None:
    """Promote a replica when Patroni cannot decide by itself (no leader elected, paused)."""
    _switch_cmd(ops.failover, site, to, max_lag, timeout, output)
