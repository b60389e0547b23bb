"""`opsctl harden`: the hardening playbook through the apply machinery."""

from __future__ import annotations

import click

from opsctl.apply.runner import ApplyRequest
from opsctl.cli.converge import converge
from opsctl.cli.options import (
    OUTPUT_OPTION,
    SITE_OPTION,
    VIA_OPTION,
    playbook_selection,
    site_to_change,
)

PLAYBOOK = "hardening.yml"


@click.command()
@SITE_OPTION
@VIA_OPTION
@playbook_selection(
    tags_help="Only these concerns or checks (hardening-sshd, sshd_permit_root_login, ...).",
    skip_tags_help="Skip these concerns or checks.")
@OUTPUT_OPTION
def harden(site: str | None, via: str | None, limit: tuple[str, ...], tags: tuple[str, ...],
           skip_tags: tuple[str, ...], check: bool, diff: bool, output: str) -> None:
    """Bring the site's hosts to the graded-protection baseline (exit 1 when a host failed)."""
    request = ApplyRequest(playbook=PLAYBOOK, limit=limit, tags=tags, skip_tags=skip_tags,
                           check=check, diff=diff, via=via)
    converge(site_to_change(site, output), request, output)
