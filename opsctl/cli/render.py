"""Shared rendering helpers for CLI commands (the library never prints)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console

OUTPUT_OPTION = click.option(
    "--output", "-o", type=click.Choice(["table", "json"]), default="table", show_default=True,
    help="Output format.",
)

VIA_OPTION = click.option(
    "--via", type=click.Choice(["ssh", "lab"]), default=None,
    help="How to reach the hosts: the site's own connection (ssh), or the lab of the site's "
         "name on this machine (lab). Default: what site.connection.via says.",
)

console = Console()
err_console = Console(stderr=True)


def emit_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")
