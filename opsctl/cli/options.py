"""Every option more than one command takes, defined once; and how a command gets its site."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from opsctl.site import Site
from opsctl.site.current import ENV, resolve_and_load

F = TypeVar("F", bound=Callable[..., Any])

OUTPUT_OPTION = click.option(
    "--output", "-o", type=click.Choice(["table", "json"]), default="table", show_default=True,
    help="Output format.",
)

VIA_OPTION = click.option(
    "--via", type=click.Choice(["ssh", "lab"]), default=None,
    help="How to reach the hosts: the site's own connection (ssh), or the lab of the site's "
         "name on this machine (lab). Default: what site.connection.via says.",
)

SITE_OPTION = click.option(
    "--site", default=None, metavar="NAME|DIR",
    help=f"Site name (inventory/NAME) or site directory. Default: ${ENV}, else the site "
         "`opsctl site use` stored, else reference when it is the only site.",
)


def site_to_read(site: str | None) -> Site:
    """The site a read command looks at (same resolution, nothing printed)."""
    return resolve_and_load(site)[1]


def site_to_change(site: str | None, output: str = "table") -> Site:
    """The site a changing command acts on. Its first line of output says which and how it
    was named (`site reference (from --site)`): on stdout, or on stderr with `-o json` so
    that stdout stays one JSON document."""
    choice, loaded = resolve_and_load(site)
    announce(choice.announcement(loaded), output)
    return loaded


def announce(line: str, output: str = "table") -> None:
    click.echo(line, err=output != "table")


def split_commas(_ctx: click.Context, _param: click.Parameter,
                 values: tuple[str, ...]) -> tuple[str, ...]:
    """`-l a -l b` and Ansible's `-l a,b` alike."""
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


def limit_option(help_text: str = "Only these hosts or groups (repeat or comma-separate).",
                 metavar: str = "HOST|GROUP") -> Callable[[F], F]:
    return click.option("--limit", "-l", multiple=True, metavar=metavar, callback=split_commas,
                        help=help_text)


def playbook_selection(tags_help: str = "Only tasks with these tags.",
                       skip_tags_help: str = "Skip tasks with these tags.") -> Callable[[F], F]:
    """--limit, --tags, --skip-tags, --check, --diff: what `apply` and `harden` hand Ansible."""
    options = [
        limit_option(),
        click.option("--tags", "-t", multiple=True, help=tags_help),
        click.option("--skip-tags", multiple=True, help=skip_tags_help),
        click.option("--check", is_flag=True, help="Dry run: report what would change."),
        click.option("--diff", is_flag=True, help="Show file differences."),
    ]

    def decorate(func: F) -> F:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate
