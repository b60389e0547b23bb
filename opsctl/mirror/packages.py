"""What the offline mirror must hold: every role's `<role>_packages` list, plus the image's.

Roles are the single source: a role that installs a Debian package names it in its
defaults (`postgresql_packages: [...]`), and the mirror follows without a second list.
"""

from __future__ import annotations

from pathlib import Path

from opsctl.errors import InvalidInput, Problem
from opsctl.lab.image import INCLUDE as IMAGE_PACKAGES
from opsctl.site.yamlfile import read_mapping


def role_packages(roles_dir: Path) -> dict[str, list[str]]:
    """{role: [package, ...]} from each role's defaults/main.yml `*_packages` variables."""
    found: dict[str, list[str]] = {}
    for defaults in sorted(roles_dir.glob("*/defaults/main.yml")):
        role = defaults.parent.parent.name
        data = read_mapping(defaults)
        for key, value in data.items():
            if not str(key).endswith("_packages"):
                continue
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise InvalidInput([Problem(str(defaults), str(key),
                                            "expected a list of Debian package names")])
            found.setdefault(role, []).extend(value)
    return found


def requested_packages(roles_dir: Path) -> list[str]:
    names = set(IMAGE_PACKAGES)
    for packages in role_packages(roles_dir).values():
        names.update(packages)
    return sorted(names)
