"""`opsctl apply`, `opsctl runs`, `opsctl up`."""

from __future__ import annotations

import click


@click.command()
def apply() -> None:
    """(being built)"""


@click.group()
def runs() -> None:
    """(being built)"""


@click.command()
def up() -> None:
    """(being built)"""
