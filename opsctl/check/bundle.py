"""The security scanner as one archive for the hosts' own daily scan (job `compliance-scan`).

The archive holds the `security` package (collector, evaluator, catalog, data) and, under
`vendor/`, the libraries it imports, taken from the control node's own installation: Debian 12
ships pydantic 1 and the evaluator needs pydantic 2. Hosts run Debian 12's Python 3.11, the
same minor version and architecture as the control node, so the compiled parts load there too.

The archive is deterministic (sorted names, no times or owners), so its checksum changes only
when its content does, and a converge copies and unpacks it only then.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import security
from opsctl.paths import cache_dir

# What the security package imports beyond the standard library, with what they import.
VENDORED = ("pydantic", "pydantic_core", "annotated_types", "typing_extensions",
            "typing_inspection", "yaml", "_yaml")
SKIP = {"__pycache__", "README.md"}


def _files(root: Path, prefix: str) -> Iterator[tuple[str, Path]]:
    if root.is_file():
        yield prefix + root.name, root
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and not SKIP.intersection(path.relative_to(root).parts) \
                and path.suffix != ".pyc":
            yield f"{prefix}{root.name}/{path.relative_to(root).as_posix()}", path


def _vendored(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return None
    origin = Path(spec.origin)
    return origin.parent if origin.name == "__init__.py" else origin


def bundle_members() -> list[tuple[str, Path]]:
    """(name in the archive, file on the control node), sorted by name."""
    members = list(_files(Path(security.__file__).resolve().parent, ""))
    for name in VENDORED:
        found = _vendored(name)
        if found is not None:
            members += list(_files(found, "vendor/"))
    return sorted(members)


def build_bundle(out_dir: Path | None = None) -> Path:
    """Write the archive (named by its checksum) unless it exists; return its path.

    Ansible evaluates this once per host: the names, sizes and times of the members key a
    small index, so an unchanged tree costs a walk and no compression."""
    out_dir = out_dir or cache_dir() / "bundles"
    members = bundle_members()
    key = hashlib.sha256("\n".join(
        f"{name}:{path.stat().st_size}:{path.stat().st_mtime_ns}" for name, path in members
    ).encode()).hexdigest()[:16]
    index = out_dir / f"index-{key}"
    if index.is_file():
        known = Path(index.read_text().strip())
        if known.is_file():
            return known
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, path in members:
            info = tarfile.TarInfo(name)
            data = path.read_bytes()
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    packed = gzip.compress(raw.getvalue(), mtime=0)
    out = out_dir / f"security-{hashlib.sha256(packed).hexdigest()[:16]}.tar.gz"
    out_dir.mkdir(parents=True, exist_ok=True)
    for path, content in ((out, packed), (index, f"{out}\n".encode())):
        if not path.exists() or path == index:
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # forks build at once
            tmp.write_bytes(content)
            tmp.replace(path)
    return out
