"""Deterministic archives of code the hosts run: the agents' code and the compliance scanner.

An archive holds its members with no times or owners (mtime 0, mode 0644) in name order, so its
bytes, and so its checksum, change only when a member's content does. A converge copies it only
then, and `unarchive`'s `tar --diff` against the unpacked tree still finds a file edited on
the host, which a checksum of the archive alone would miss.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

from opsctl.paths import cache_dir

SKIP = {"__pycache__", "README.md"}


def tree_members(root: Path, prefix: str = "") -> Iterator[tuple[str, Path]]:
    """(name in the archive, file) for a file, or for a directory's files under its name;
    no byte code, no README."""
    if root.is_file():
        yield prefix + root.name, root
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and not SKIP.intersection(path.relative_to(root).parts) \
                and path.suffix != ".pyc":
            yield f"{prefix}{root.name}/{path.relative_to(root).as_posix()}", path


def build_archive(stem: str, members: list[tuple[str, Path]],
                  out_dir: Path | None = None) -> Path:
    """Write `<stem>-<checksum>.tar.gz` unless it exists; return its path.

    Ansible evaluates this once per host: the names, sizes and times of the members key a
    small index, so an unchanged tree costs a walk and no compression."""
    out_dir = out_dir or cache_dir() / "bundles"
    members = sorted(members)
    key = hashlib.sha256("\n".join(
        f"{name}:{path.stat().st_size}:{path.stat().st_mtime_ns}" for name, path in members
    ).encode()).hexdigest()[:16]
    index = out_dir / f"index-{stem}-{key}"
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
    out = out_dir / f"{stem}-{hashlib.sha256(packed).hexdigest()[:16]}.tar.gz"
    out_dir.mkdir(parents=True, exist_ok=True)
    for path, content in ((out, packed), (index, f"{out}\n".encode())):
        if not path.exists() or path == index:
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # forks build at once
            tmp.write_bytes(content)
            tmp.replace(path)
    return out


def code_archive(source: Path, out_dir: Path | None = None) -> Path:
    """A package's Python files (the agents' code), under the package's own name."""
    source = source.resolve()
    return build_archive(source.name, [(name, path) for name, path in tree_members(source)
                                       if path.suffix == ".py"], out_dir)
