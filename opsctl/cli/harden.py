"""`opsctl harden`: the hardening playbook through the apply machinery."""

from __future__ import annotations

import click

from opsctl.apply.runner import ApplyRequest
from opsctl.apply.runner import apply as run_apply
from opsctl.cli.apply import SITE_OPTION, _exit_for, _recap, _show_event
from opsctl.cli.render import OUTPUT_OPTION, VIA_OPTION, emit_json
from opsctl.site import load_site

PLAYBOOK = "hardening.yml"


@click.command()
@SITE_OPTION
@VIA_OPTION
@click.option("--limit", "-l", multiple=True, help="Only these hosts or groups.")
@click.option("--tags", "-t", multiple=True,
              help="Only these concerns or checks (hardening-sshd, sshd_permit_root_login, ...).")
@click.option("--skip-tags", multiple=True, help="Skip these concerns or checks.")
@click.option("--check", is_flag=True, help="Dry run: report what would change.")
@click.option("--diff", is_flag=True, help="Show file differences.")
@OUTPUT_OPTION
def harden(site: str, via: str | None, limit: tuple[str, ...], tags: tuple[str, ...],
           skip_tags: tuple[str, ...], check: bool, diff: bool, output: str) -> None:
    """Bring the site's hosts to the graded-protection baseline (exit 1 when a host failed)."""
    loaded = load_site(site)
    request = ApplyRequest(playbook=PLAYBOOK, limit=limit, tags=tags, skip_tags=skip_tags,
                           check=check, diff=diff, via=via)
    record = run_apply(loaded, request,
                       on_event=_show_event if output == "table" else lambda _e: None)
    if output == "json":
        emit_json(record.as_dict())
    else:
        _recap(record)
    _exit_for(record)
