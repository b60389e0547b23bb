"""`opsctl mirror ...`."""

from __future__ import annotations

import click


@click.group()
def mirror() -> None:
    """(being built)"""
