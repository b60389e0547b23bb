"""The access gateway's modules, loaded from their files: the component ships them beside its
main.py (components/access-gateway/), a directory whose name is no Python package's."""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

GATEWAY = Path(__file__).resolve().parents[2] / "components" / "access-gateway"


@functools.cache
def gateway_module(name: str) -> ModuleType:
    """One of the gateway's modules (it may import the others beside it), loaded once."""
    sys.path.insert(0, str(GATEWAY))
    try:
        spec = importlib.util.spec_from_file_location(name, GATEWAY / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while it loads
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(GATEWAY))
    return module
