"""Small stdlib-only programs opsctl runs on a host through the transport (`python3 -`)."""

from __future__ import annotations

from pathlib import Path


def program(name: str) -> str:
    """The text of remote program NAME, sent on stdin to `python3 -`."""
    return (Path(__file__).parent / f"{name}.py").read_text(encoding="utf-8")
