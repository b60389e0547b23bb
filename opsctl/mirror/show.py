"""Describe the mirror: what it holds, when it was built, whether it covers the roles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opsctl.mirror.build import is_current, mirror_dir, read_manifest
from opsctl.mirror.packages import requested_packages, role_packages
from opsctl.mirror.secdata import read_header
from opsctl.paths import project_root


def describe(roles_dir: Path | None = None) -> dict[str, Any]:
    roles = roles_dir or project_root() / "roles"
    wanted = requested_packages(roles)
    manifest = read_manifest()
    held = {d["name"] for d in manifest.get("debs", [])} if manifest else set()
    return {
        "path": str(mirror_dir()),
        "built": manifest.get("built") if manifest else None,
        "packages": len(held),
        "bytes": manifest.get("bytes", 0) if manifest else 0,
        "current": is_current(wanted),
        "missing": [p for p in wanted if p not in held],
        "roles": role_packages(roles),
        # Debian's security data the mirror carries (release, fetched, source, counts); None
        "security_data": read_header(mirror_dir()),
    }
