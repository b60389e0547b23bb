"""Shared rendering helpers for CLI commands (the library never prints)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def emit_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


def show_health(result: Any, output: str, render: Callable[[Any], Any]) -> None:
    """A health view (status, pki status): JSON (`as_dict()`) or the rendered table, then
    exit 1 when `result.healthy` is false."""
    if output == "json":
        emit_json(result.as_dict())
    else:
        console.print(render(result))
    if not result.healthy:
        sys.exit(1)
