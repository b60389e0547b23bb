"""Values that roles' defaults own (ports, paths), read from the defaults: one source.

Only literal values are read; a default that is a Jinja expression is the role's business
and has no Python copy.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from opsctl.errors import InvalidInput, Problem
from opsctl.paths import project_root
from opsctl.site.yamlfile import read_mapping


@cache
def role_defaults(role: str) -> dict[str, Any]:
    return read_mapping(project_root() / "roles" / role / "defaults" / "main.yml")


def role_default(role: str, key: str) -> Any:
    value = role_defaults(role).get(key)
    if value is None or (isinstance(value, str) and "{{" in value):
        raise InvalidInput([Problem(f"roles/{role}/defaults/main.yml", key,
                                    "missing, or not a literal value opsctl can read")])
    return value
