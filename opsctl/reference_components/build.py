"""Build the reference components (components/<name>/) into versioned tarball artifacts.

`python -m opsctl.reference_components.build [OUTDIR]` writes
build/components/<name>-<version>.tar.gz for every release below and prints each one's
sha256. The tarballs are reproducible (sorted members, fixed owner and times, gzip without a
timestamp), so the checksums the reference site names stay valid from build to build; a unit
test fails when they drift.

What differs between releases is release.json: its version (what /version answers) and
`healthy` — 9.9.9-broken is deliberately built to answer /healthz with 500, for the
rollback test.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from opsctl.paths import project_root

# (component, version, healthy)
REFERENCE_RELEASES: tuple[tuple[str, str, bool], ...] = (
    ("query-service", "1.0.0", True),
    ("query-service", "1.1.0", True),
    ("query-service", "9.9.9-broken", False),
    ("access-gateway", "1.0.0", True),
)
MTIME = 1_700_000_000


@dataclass(frozen=True)
class Artifact:
    component: str
    version: str
    path: Path
    sha256: str


def source_dir(component: str) -> Path:
    return project_root() / "components" / component


def output_dir() -> Path:
    return project_root() / "build" / "components"


def artifact_name(component: str, version: str) -> str:
    return f"{component}-{version}.tar.gz"


def _member(name: str, data: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info, io.BytesIO(data)


def tarball(files: dict[str, bytes]) -> bytes:
    """A reproducible .tar.gz of {name: content}."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            tar.addfile(*_member(name, files[name]))
    return gzip.compress(raw.getvalue(), compresslevel=9, mtime=0)


def build_one(component: str, version: str, healthy: bool, out: Path) -> Artifact:
    src = source_dir(component)
    files = {p.relative_to(src).as_posix(): p.read_bytes()
             for p in sorted(src.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}
    release = {"component": component, "version": version, "healthy": healthy}
    files["release.json"] = (json.dumps(release, sort_keys=True) + "\n").encode()
    data = tarball(files)
    out.mkdir(parents=True, exist_ok=True)
    path = out / artifact_name(component, version)
    if not path.exists() or path.read_bytes() != data:
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return Artifact(component, version, path, hashlib.sha256(data).hexdigest())


def build_reference(out: Path | None = None) -> list[Artifact]:
    out = out or output_dir()
    return [build_one(c, v, h, out) for c, v, h in REFERENCE_RELEASES]


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else None
    for artifact in build_reference(out):
        print(f"{artifact.sha256}  {artifact.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
