"""Back up and restore the control node's state: the sites' CA keys, secrets, pinned host
keys, the audit log and the restore-drill records.

Without them a province loses the means to manage its own site when the control node dies:
the CA that signs every host certificate, the admin's sudo password, the database and agent
credentials, the host keys it trusts, and the tamper-evident history an assessor asks for.
Everything else in the state directory is made again (generated SSH configs, a lab's
containers) or is bulky history (the runs' Ansible artifacts, of which only each run's record
is kept).

The archive is one file: a gzip'd tar with a manifest (sha256 of every member, the audit
log's head), encrypted with AES-256-GCM under a key derived from a passphrase with scrypt,
so a wrong passphrase or a changed byte is refused rather than half restored.
"""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import shutil
import socket
import tarfile
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from opsctl import audit
from opsctl.errors import InvalidInput, OpsctlError, Problem
from opsctl.paths import ensure_private_dir, state_dir, write_private

MAGIC = b"OPSCTL-STATE-1\n"
SALT_BYTES, NONCE_BYTES = 16, 12
# scrypt at 2**17: about 128 MiB and a few tenths of a second, once per backup or restore
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1
MANIFEST = "MANIFEST.json"
# What is kept: whole directories, single files, and each run's record (not its artifacts).
DIRECTORIES = ("secrets", "pki", "sites", "drills")
FILES = ("audit.log", "site")
RUN_RECORD = "run.json"
MIN_PASSPHRASE = 12


class StateBackupError(OpsctlError):
    """The archive cannot be read or restored (wrong passphrase, damaged, occupied state)."""


@dataclass(frozen=True)
class Summary:
    path: Path
    created: str
    host: str
    files: int
    sites: list[str]
    audit_records: int
    audit_head: str | None
    sha256: str = ""
    replaced: Path | None = None
    notes: list[str] = field(default_factory=list)


def members(root: Path) -> list[str]:
    """The state's files to keep, relative to root, sorted (the archive is the same for the
    same state)."""
    out: list[str] = []
    for name in FILES:
        if (root / name).is_file():
            out.append(name)
    for name in DIRECTORIES:
        base = root / name
        if base.is_dir():
            out += [p.relative_to(root).as_posix() for p in sorted(base.rglob("*"))
                    if p.is_file() and not p.is_symlink()]
    runs = root / "runs"
    if runs.is_dir():
        out += [p.relative_to(root).as_posix() for p in sorted(runs.glob(f"*/{RUN_RECORD}"))]
    return sorted(out)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _key(passphrase: str, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P).derive(
        passphrase.encode())


def _audit_head(root: Path) -> tuple[int, str | None]:
    records = audit.records(root / "audit.log")
    return len(records), records[-1]["hash"] if records else None


def pack(root: Path, passphrase: str, now: datetime | None = None) -> bytes:
    """The encrypted archive of the state under root."""
    names = members(root)
    contents = {name: (root / name).read_bytes() for name in names}
    count, head = _audit_head(root)
    manifest = {
        "format": 1,
        "created": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "files": {name: _sha256(data) for name, data in contents.items()},
        "modes": {name: (root / name).stat().st_mode & 0o777 for name in names},
        "audit_records": count,
        "audit_head": head,
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name, data in [(MANIFEST, json.dumps(manifest, indent=1).encode()),
                           *contents.items()]:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o600, 0
            tar.addfile(info, io.BytesIO(data))
    salt, nonce = secrets.token_bytes(SALT_BYTES), secrets.token_bytes(NONCE_BYTES)
    sealed = AESGCM(_key(passphrase, salt)).encrypt(nonce, buffer.getvalue(), MAGIC)
    return MAGIC + salt + nonce + sealed


@dataclass(frozen=True)
class Unpacked:
    manifest: dict
    contents: dict[str, bytes]


def unpack(data: bytes, passphrase: str, source: str = "archive") -> Unpacked:
    """The archive's manifest and files, each checked against the manifest's hash."""
    header = len(MAGIC) + SALT_BYTES + NONCE_BYTES
    if not data.startswith(MAGIC) or len(data) <= header:
        raise StateBackupError(f"{source}: not an opsctl state backup")
    salt = data[len(MAGIC):len(MAGIC) + SALT_BYTES]
    nonce = data[len(MAGIC) + SALT_BYTES:header]
    try:
        plain = AESGCM(_key(passphrase, salt)).decrypt(nonce, data[header:], MAGIC)
    except InvalidTag:
        raise StateBackupError(f"{source}: wrong passphrase, or the file was changed "
                               "since it was written") from None
    contents: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(plain), mode="r:gz") as tar:
        for info in tar.getmembers():
            path = PurePosixPath(info.name)
            if not info.isfile() or path.is_absolute() or ".." in path.parts:
                raise StateBackupError(f"{source}: unexpected member {info.name!r}")
            handle = tar.extractfile(info)
            assert handle is not None
            contents[info.name] = handle.read()
    manifest = json.loads(contents.pop(MANIFEST, b"{}") or b"{}")
    listed = manifest.get("files", {})
    if set(listed) != set(contents):
        raise StateBackupError(f"{source}: members and manifest disagree")
    bad = sorted(n for n, data in contents.items() if _sha256(data) != listed[n])
    if bad:
        raise StateBackupError(f"{source}: damaged members: {', '.join(bad)}")
    return Unpacked(manifest, contents)


def _sites(names: list[str] | dict) -> list[str]:
    return sorted({n.split("/")[1] for n in names
                   if n.startswith(("secrets/", "pki/", "sites/")) and n.count("/") >= 2})


def _summary(path: Path, got: Unpacked, sha256: str = "", **extra) -> Summary:
    m = got.manifest
    return Summary(path, m.get("created", "?"), m.get("host", "?"), len(got.contents),
                   _sites(list(got.contents)), m.get("audit_records", 0), m.get("audit_head"),
                   sha256, **extra)


def check_passphrase(passphrase: str, option: str) -> None:
    if len(passphrase) < MIN_PASSPHRASE:
        raise InvalidInput([Problem(option, "", f"the passphrase needs at least "
                                                f"{MIN_PASSPHRASE} characters")])


def backup(out: Path, passphrase: str, option: str = "--passphrase-file") -> Summary:
    """Write the state's archive to `out` (mode 0600; never over an existing file) and
    record it, with its sha256, in the audit log."""
    check_passphrase(passphrase, option)
    if out.exists():
        raise InvalidInput([Problem(str(out), "", "exists; name a new file")])
    if not out.parent.is_dir():
        raise InvalidInput([Problem(str(out), "", "its directory does not exist")])
    root = state_dir()
    verdict = audit.verify(root / "audit.log")
    if not verdict.ok:
        raise StateBackupError(f"{root / 'audit.log'}: line {verdict.first_bad}: "
                               f"{verdict.reason}; back up after `opsctl audit verify` passes")
    data = pack(root, passphrase)
    write_private(out, data)
    digest = _sha256(data)
    got = unpack(data, passphrase, str(out))  # what was written reads back
    audit.append("state.backup", {"file": str(out)},
                 f"{len(got.contents)} files, sha256 {digest}")
    return _summary(out, got, digest)


def verify(path: Path, passphrase: str) -> Summary:
    """Read the archive, check every member and the audit log's chain inside it."""
    data = _read(path)
    got = _checked(path, data, passphrase)
    notes = [] if "audit.log" in got.contents else ["no audit log in the archive"]
    return _summary(path, got, _sha256(data), notes=notes)


def _checked(path: Path, data: bytes, passphrase: str) -> Unpacked:
    """The archive unpacked, its members and the chain of its audit log checked."""
    got = unpack(data, passphrase, str(path))
    if "audit.log" in got.contents:
        verdict = _verify_audit(got.contents["audit.log"])
        if not verdict.ok:
            raise StateBackupError(f"{path}: its audit log breaks at line {verdict.first_bad}: "
                                   f"{verdict.reason}")
    return got


def _verify_audit(text: bytes) -> audit.Verdict:
    with tempfile.TemporaryDirectory(prefix="opsctl-audit-") as scratch:
        probe = Path(scratch) / "audit.log"
        probe.write_bytes(text)
        return audit.verify(probe)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput([Problem(str(path), "", exc.strerror or str(exc))]) from None


def occupied(root: Path) -> list[str]:
    """What a restore would overwrite: the kept paths the state already has."""
    return [name for name in (*FILES, *DIRECTORIES)
            if (root / name).exists() and (not (root / name).is_dir()
                                           or any((root / name).iterdir()))]


def restore(path: Path, passphrase: str, force: bool = False) -> Summary:
    """Put the archive's state in place; an occupied state is refused, or with `force`
    moved aside first (`replaced-TIME/`), never deleted."""
    data = _read(path)
    got = _checked(path, data, passphrase)
    root = ensure_private_dir(state_dir())
    taken = occupied(root)
    replaced = None
    if taken and not force:
        raise StateBackupError(f"{root} already holds {', '.join(taken)}; restore into an "
                               "empty state, or --force to move them aside first")
    if taken:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        replaced = ensure_private_dir(root / f"replaced-{stamp}")
        for name in taken:
            shutil.move(str(root / name), str(replaced / name))
    modes = got.manifest.get("modes", {})
    for name, content in sorted(got.contents.items()):
        target = root / name
        for parent in reversed(target.relative_to(root).parents[:-1]):
            ensure_private_dir(root / parent)
        target.touch(mode=0o600)
        target.write_bytes(content)
        target.chmod(modes.get(name, 0o600) & 0o700)  # never readable by others
    audit.append("state.restore", {"file": str(path)},
                 f"{len(got.contents)} files, sha256 {_sha256(data)}"
                 + (f", replaced moved to {replaced}" if replaced else ""))
    return _summary(path, got, _sha256(data), replaced=replaced)
