"""Push the offline mirror from the control node to `site.mirror.host:site.mirror.path`.

Pure: the remote manifest's output is parsed by `parse_manifest`, `plan` turns a local and
a remote manifest into the files to send (in a safe order) and the files to delete, and
`commit_script` writes the shell program that puts them in place.
Edge: `push` runs three kinds of remote commands over the site's transport, each an argv:
`sh -s` with MANIFEST_SCRIPT (sha256 and size of every file under the mirror path), `tar -x`
of the changed files into a staging directory beside the repository, and `sh -s` with the
commit script, which renames the staged files into place, packages first and the signed
index last (InRelease the very last), then deletes what the mirror no longer holds.

The host needs only what every Debian has (sh, coreutils, findutils, tar), not python3: the
mirror host is the first machine of a site, and the one a bare machine's python3 comes from.

So apt never reads a half-written file: every file appears by rename(2), a new index appears
only after every package it names, and a package disappears only after the index that named
it was replaced. (A client that read the old index a moment before may miss a removed
package; its next `apt update` gets the new one.)
"""

from __future__ import annotations

import hashlib
import io
import shlex
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from opsctl.errors import InvalidInput, OpsctlError, Problem
from opsctl.mirror.build import mirror_dir
from opsctl.site.model import Site
from opsctl.site.yamlfile import display_path
from opsctl.transport import Result, for_site

Progress = Callable[[str], None]
# for_site(site).run: (host, argv, stdin=None, *, timeout) -> Result; every call here names
# its timeout (the transport's keyword).
Runner = Callable[..., Result]

STAGING = ".opsctl-push"  # beside the repository (same filesystem, so rename is atomic)
# The flat repository's index, in the order it is put in place: what InRelease signs first,
# InRelease itself last (apt reads it first and checks every other index against it).
INDEX_ORDER = ("Packages", "Packages.gz", "Packages.xz", "Release", "Release.gpg", "InRelease")
BATCH_BYTES = 64 * 1024 * 1024  # one tar stream per batch bounds the memory a push holds

# `sh -s ROOT`: "SHA256 SIZE PATH" per regular file under ROOT, top-level dot entries (the
# staging directory) and symbolic links left out; nothing at all when ROOT does not exist.
MANIFEST_SCRIPT = r'''
set -eu
[ -d "$1" ] || exit 0
cd "$1"
find . -mindepth 1 -path './.*' -prune -o -type f -print | LC_ALL=C sort |
while IFS= read -r path; do
    sum=$(sha256sum < "$path")
    printf '%s %s %s\n' "${sum%% *}" "$(stat -c %s -- "$path")" "${path#./}"
done
'''


def commit_script(root: str, staging: str, install: tuple[str, ...],
                  delete: tuple[str, ...]) -> str:
    """The shell program that puts the staged files in place in `install`'s order (each by
    rename(2): `mv` within one filesystem), then deletes `delete` and the staging directory.
    It changes nothing unless every staged file is there."""
    q = shlex.quote
    lines = ["set -eu", f"root={q(root)}", f"staging={q(staging)}", "missing="]
    lines += [f'[ -f "$staging"/{q(rel)} ] || missing="$missing "{q(rel)}' for rel in install]
    lines += ['[ -z "$missing" ] || { echo "staged files missing:$missing" >&2; exit 1; }',
              "sync"]
    for parent in sorted({str(PurePosixPath(rel).parent) for rel in install} - {"."}):
        lines.append(f'mkdir -p -m 0755 -- "$root"/{q(parent)}')
    lines += [f'mv -f -- "$staging"/{q(rel)} "$root"/{q(rel)}' for rel in install]
    lines += [f'rm -f -- "$root"/{q(rel)}' for rel in delete]
    lines += ['rm -rf -- "$staging"', "sync"]
    return "\n".join(lines) + "\n"


class MirrorPushError(OpsctlError):
    """The mirror host refused or failed a step of the push."""

    exit_code = 1


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    size: int


Manifest = dict[str, FileEntry]


@dataclass(frozen=True)
class PushPlan:
    send: tuple[str, ...]  # in the order they are put in place
    delete: tuple[str, ...]
    unchanged: int

    @property
    def empty(self) -> bool:
        return not self.send and not self.delete


@dataclass(frozen=True)
class PushResult:
    site: str
    host: str
    path: str
    sent: int
    bytes_sent: int
    deleted: int
    unchanged: int
    seconds: float


# --- pure --------------------------------------------------------------------------------
def _safe_relative(rel: str) -> bool:
    path = PurePosixPath(rel)
    return bool(rel) and not path.is_absolute() and ".." not in path.parts \
        and not path.parts[0].startswith(".")


def parse_manifest(output: str, where: str = "remote") -> Manifest:
    """MANIFEST_SCRIPT's output (`SHA256 SIZE PATH` per line) → {path: FileEntry}."""
    manifest: Manifest = {}
    for lineno, line in enumerate(output.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(" ", 2)
        if len(parts) != 3 or len(parts[0]) != 64 or not parts[1].isdigit():
            raise MirrorPushError(f"{where}: manifest line {lineno} is not "
                                  f"'SHA256 SIZE PATH': {line[:80]!r}")
        digest, size, rel = parts
        try:
            int(digest, 16)
        except ValueError:
            raise MirrorPushError(f"{where}: manifest line {lineno}: {digest[:16]}… is not "
                                  "a sha256") from None
        if not _safe_relative(rel):
            raise MirrorPushError(f"{where}: manifest line {lineno}: unsafe path {rel!r}")
        manifest[rel] = FileEntry(digest.lower(), int(size))
    return manifest


def _install_key(rel: str) -> tuple[int, int, str]:
    """Packages and everything else first, then the index files in INDEX_ORDER."""
    if rel in INDEX_ORDER:
        return (1, INDEX_ORDER.index(rel), rel)
    return (0, 0, rel)


def plan(local: Manifest, remote: Manifest) -> PushPlan:
    """The files to send (new or different) in the order to put them in place, and the
    files the remote has that the mirror no longer holds."""
    changed = [rel for rel, entry in local.items() if remote.get(rel) != entry]
    for rel in changed:
        if not _safe_relative(rel):
            raise MirrorPushError(f"local mirror: unsafe path {rel!r}")
    send = tuple(sorted(changed, key=_install_key))
    delete = tuple(sorted(set(remote) - set(local)))
    return PushPlan(send, delete, len(local) - len(changed))


def batches(send: tuple[str, ...], local: Manifest,
            limit: int = BATCH_BYTES) -> Iterator[list[str]]:
    """Consecutive groups of files of at most `limit` bytes each (a bigger file alone)."""
    batch: list[str] = []
    size = 0
    for rel in send:
        if batch and size + local[rel].size > limit:
            yield batch
            batch, size = [], 0
        batch.append(rel)
        size += local[rel].size
    if batch:
        yield batch


# --- edge --------------------------------------------------------------------------------
def local_manifest(root: Path) -> Manifest:
    """The same manifest as MANIFEST_SCRIPT's, of the control node's mirror."""
    manifest: Manifest = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if not path.is_file() or path.is_symlink() or rel.startswith("."):
            continue
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda h=handle: h.read(1 << 20), b""):
                digest.update(block)
        manifest[rel] = FileEntry(digest.hexdigest(), path.stat().st_size)
    return manifest


def tar_stream(root: Path, files: list[str]) -> bytes:
    """The files as an uncompressed tar (debs do not compress), root-owned, world-readable
    (nginx reads them as www-data; apt reads file: sources as _apt)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in files:
            path = root / rel
            info = tarfile.TarInfo(rel)
            info.size = path.stat().st_size
            info.mtime = int(path.stat().st_mtime)
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            with path.open("rb") as handle:
                tar.addfile(info, handle)
    return buffer.getvalue()


def _check(result: Result, host: str, step: str) -> str:
    if result.rc != 0:
        raise MirrorPushError(f"{host}: {step} failed: {result.message}")
    return result.stdout


def remote_manifest(run: Runner, host: str, path: str) -> Manifest:
    result = run(host, ["sh", "-s", "--", path], stdin=MANIFEST_SCRIPT, timeout=600)
    return parse_manifest(_check(result, host, "reading the mirror's manifest"), host)


def require_mirror(site: Site) -> tuple[str, str]:
    """site.mirror's host and path, or the one-line error (exit 2) when the site has none."""
    place = site.mirror
    if place.host is None or place.path is None:
        sfile = display_path(site.directory / "group_vars" / "all" / "site.yml")
        raise InvalidInput([Problem(sfile, "site.mirror", "missing: the control node serves "
                                    "this site's mirror; set site.mirror.host to push it to a "
                                    "host of the site")])
    return place.host, place.path


def push(site: Site, run: Runner | None = None, *, via: str | None = None,
         source: Path | None = None, progress: Progress = lambda _msg: None) -> PushResult:
    """Make `site.mirror.path` on `site.mirror.host` hold exactly the local mirror."""
    host, path = require_mirror(site)
    root = source or mirror_dir()
    if not (root / "InRelease").is_file():
        raise MirrorPushError(f"no mirror at {root}: run `opsctl mirror build` first")
    run = run or for_site(site, via).run
    start = time.monotonic()
    progress(f"hashing the local mirror {root}")
    local = local_manifest(root)
    progress(f"reading {host}:{path}")
    todo = plan(local, remote_manifest(run, host, path))
    sent_bytes = sum(local[rel].size for rel in todo.send)
    if not todo.empty:
        staging = f"{path}/{STAGING}"
        _check(run(host, ["rm", "-rf", "--", staging], timeout=120), host,
               "clearing the staging directory")
        _check(run(host, ["mkdir", "-p", "-m", "0755", "--", staging], timeout=60), host,
               "making the staging directory")
        for batch in batches(todo.send, local):
            size = sum(local[rel].size for rel in batch)
            progress(f"sending {len(batch)} files ({size / 1e6:.1f} MB)")
            stream = tar_stream(root, batch)
            _check(run(host, ["tar", "-x", "-f", "-", "-C", staging], stdin=stream,
                       timeout=120 + size / 1e6), host, "unpacking")
        progress(f"putting {len(todo.send)} files in place, deleting {len(todo.delete)}")
        commit = commit_script(path, staging, todo.send, todo.delete)
        _check(run(host, ["sh", "-s"], stdin=commit, timeout=600), host,
               "putting the files in place")
        after = plan(local, remote_manifest(run, host, path))
        if not after.empty:
            raise MirrorPushError(f"{host}: {path} still differs from the local mirror after "
                                  f"the push ({len(after.send)} files differ, "
                                  f"{len(after.delete)} extra)")
    return PushResult(site.name, host, path, len(todo.send), sent_bytes, len(todo.delete),
                      todo.unchanged, round(time.monotonic() - start, 2))
