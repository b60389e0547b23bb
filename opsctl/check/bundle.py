"""The security scanner as one archive for the hosts' own daily scan (job `compliance-scan`).

The archive holds the `security` package (collector, evaluator, catalog, data) and, under
`vendor/`, the libraries it imports, taken from the control node's own installation: Debian 12
ships pydantic 1 and the evaluator needs pydantic 2. Hosts run Debian 12's Python 3.11, the
same minor version and architecture as the control node, so the compiled parts load there too.

The archive is deterministic (sorted names, no times or owners), so its checksum changes only
when its content does, and a converge copies and unpacks it only then.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import security
from opsctl.archives import build_archive, tree_members

# What the security package imports beyond the standard library, with what they import.
VENDORED = ("pydantic", "pydantic_core", "annotated_types", "typing_extensions",
            "typing_inspection", "yaml", "_yaml")


def _vendored(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return None
    origin = Path(spec.origin)
    return origin.parent if origin.name == "__init__.py" else origin


def bundle_members() -> list[tuple[str, Path]]:
    """(name in the archive, file on the control node), sorted by name."""
    members = list(tree_members(Path(security.__file__).resolve().parent))
    for name in VENDORED:
        found = _vendored(name)
        if found is not None:
            members += list(tree_members(found, "vendor/"))
    return sorted(members)


def build_bundle(out_dir: Path | None = None) -> Path:
    """The scanner's archive (opsctl.archives): built once per content, then reused."""
    return build_archive("security", bundle_members(), out_dir)
