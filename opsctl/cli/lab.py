"""`opsctl lab ...`."""

from __future__ import annotations

import click


@click.group()
def lab() -> None:
    """(being built)"""
