"""`opsctl host add|retire`: grow and shrink a site's hosts.yml (the library: opsctl/hosts.py)."""

from __future__ import annotations

import click

from opsctl import hosts
from opsctl.apply.runner import ApplyRequest
from opsctl.cli.converge import exit_for, recap, show_event
from opsctl.cli.options import OUTPUT_OPTION, SITE_OPTION, VIA_OPTION, site_to_change
from opsctl.cli.render import console, emit_json, err_console


@click.group()
def host() -> None:
    """Grow and shrink the site: a host into hosts.yml, or one retired from it."""


@host.command("add")
@SITE_OPTION
@click.argument("name")
@click.option("--address", required=True, help="Its address; its zone follows from it.")
@click.option("--group", "groups", multiple=True, required=True, metavar="GROUP",
              help="A function group it joins (app, db_replica, ...); repeatable.")
def add_cmd(site: str | None, name: str, address: str, groups: tuple[str, ...]) -> None:
    """Add NAME to hosts.yml (comments kept); `opsctl apply` then brings it in everywhere."""
    now = hosts.add(site_to_change(site), name, address, list(groups))
    host_ = now.hosts[name]
    console.print(f"{name} ({host_.address}, zone {host_.zone}) is in hosts.yml under "
                  f"{', '.join(sorted(host_.groups - {'all'}))}. Next: pin its key "
                  f"(`opsctl site trust {now.name} --limit {name}`), give the network team "
                  f"the boundary's new whitelist (`opsctl site boundary {now.name}`; a lab:"
                  f" `opsctl lab up` does both), then `opsctl apply --site {now.name}`.",
                  highlight=False)


@host.command("retire")
@SITE_OPTION
@VIA_OPTION
@click.argument("names", nargs=-1, required=True, metavar="HOST...")
@click.option("--skip-tags", multiple=True, help="Skip tasks with these tags in the converge.")
@OUTPUT_OPTION
def retire_cmd(site: str | None, via: str | None, names: tuple[str, ...],
               skip_tags: tuple[str, ...], output: str) -> None:
    """Take hosts out: leadership moved off, drained, services stopped, out of hosts.yml,
    the rest converged without them (their data is left on them). Exit 1 if that failed."""
    def progress(message: str) -> None:
        if output == "table":
            err_console.print(f"[dim]retire:[/dim] {message}", highlight=False)

    result = hosts.retire(site_to_change(site, output), list(names),
                          ApplyRequest(skip_tags=skip_tags, via=via), progress=progress,
                          on_event=show_event if output == "table" else lambda _e: None)
    assert result.record is not None
    if output == "json":
        emit_json(result.as_dict())
    else:
        recap(result.record)
        console.print(f"retired {', '.join(result.plan.hosts)}; their data is left on them "
                      "(services stopped and disabled). The boundary's whitelist no longer "
                      "names them: give the network team `opsctl site boundary` (a lab: "
                      "`opsctl lab up`).", highlight=False)
    exit_for(result.record)
