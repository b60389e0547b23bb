"""Build the offline apt mirror with apt's own resolver and download, signed with our key.

apt runs with a private configuration (its own status file, lists and archive cache under
`cache_dir()/mirror-work`), so the machine's own package state is neither read nor changed;
an empty status file makes apt resolve every dependency, as a host with nothing installed
would need. The result is a flat repository (`deb URI ./`) in `cache_dir()/mirror`,
replaced atomically, with a manifest saying what it was built from, and Debian's security
data for bookworm (opsctl/mirror/secdata.py) fetched with it: a fetch that fails keeps the
previous data and says so, never failing the build.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cmp_to_key
from pathlib import Path

from opsctl.errors import InvalidInput, OpsctlError, PrerequisiteMissing, Problem
from opsctl.mirror import secdata
from opsctl.mirror.packages import requested_packages
from opsctl.paths import cache_dir, project_root
from security.versions import compare_versions

MANIFEST = "manifest.json"
PUBLIC_KEY = "opsctl-mirror.gpg"
KEY_UID = "opsctl offline mirror <mirror@opsctl.invalid>"
FORMAT = 1

Progress = Callable[[str], None]


class MirrorError(OpsctlError):
    exit_code = 1


@dataclass(frozen=True)
class MirrorResult:
    path: Path
    packages: int
    bytes: int
    rebuilt: bool
    seconds: float
    # what the build did with Debian's security data (fetched, kept, none), in one line
    security: secdata.SecurityDataResult | None = None


def mirror_dir() -> Path:
    return cache_dir() / "mirror"


def public_key_path() -> Path:
    """The keyring hosts trust the mirror with; the base role copies it to each host."""
    return mirror_dir() / PUBLIC_KEY


def request_hash(packages: Sequence[str]) -> str:
    return hashlib.sha256(f"{FORMAT}|{','.join(packages)}".encode()).hexdigest()


def read_manifest(path: Path | None = None) -> dict | None:
    try:
        return json.loads(((path or mirror_dir()) / MANIFEST).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def is_current(packages: Sequence[str], path: Path | None = None) -> bool:
    manifest = read_manifest(path)
    root = path or mirror_dir()
    return (manifest is not None and manifest.get("hash") == request_hash(packages)
            and (root / "InRelease").exists() and (root / PUBLIC_KEY).exists())


def _run(cmd: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 900,
         cwd: Path | None = None) -> str:
    try:
        result = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout,
                                env=env, cwd=cwd, check=False)
    except FileNotFoundError:
        raise PrerequisiteMissing(f"{cmd[0]} is not installed (run ./setup)") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise MirrorError(f"mirror build: {' '.join(cmd[:3])}…: exit {result.returncode}: "
                          f"{detail[-1] if detail else 'no output'}")
    return result.stdout


@contextmanager
def _locked(lock: Path) -> Iterator[None]:
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _apt_options(work: Path) -> list[str]:
    return [
        "-o", f"Dir::Etc={work / 'etc'}",
        "-o", "Dir::Etc::trusted=/etc/apt/trusted.gpg",
        "-o", "Dir::Etc::trustedparts=/etc/apt/trusted.gpg.d",
        "-o", f"Dir::State={work / 'state'}",
        "-o", f"Dir::State::status={work / 'state' / 'status'}",
        "-o", f"Dir::Cache={work / 'cache'}",
        "-o", "Debug::NoLocking=1",
        "-o", "APT::Install-Recommends=false",
        "-o", "APT::Get::Download-Only=true",
    ]


def _prepare_work(work: Path, sources: Path) -> None:
    """A private apt tree using the machine's enabled sources (the only mirrors that answer)."""
    etc = work / "etc"
    (etc / "sources.list.d").mkdir(parents=True, exist_ok=True)
    (etc / "preferences.d").mkdir(exist_ok=True)
    (etc / "apt.conf.d").mkdir(exist_ok=True)
    (work / "state" / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (work / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    (work / "state" / "status").write_text("")
    main = sources / "sources.list"
    (etc / "sources.list").write_text(main.read_text() if main.exists() else "")
    for old in (etc / "sources.list.d").iterdir():
        old.unlink()
    for path in sorted((sources / "sources.list.d").glob("*")):
        if path.suffix in (".list", ".sources"):
            shutil.copyfile(path, etc / "sources.list.d" / path.name)


def _ensure_key(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    listed = subprocess.run(["gpg", "--batch", "--list-secret-keys", KEY_UID], env=env,
                            capture_output=True, text=True, check=False)
    if listed.returncode != 0:
        _run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", KEY_UID,
              "ed25519", "sign", "never"], env=env)


def _write_index(repo: Path, home: Path, debs: list[Path]) -> None:
    packages = _run(["dpkg-scanpackages", "--multiversion", "."], cwd=repo, timeout=300)
    (repo / "Packages").write_text(packages)
    with gzip.open(repo / "Packages.gz", "wt") as handle:
        handle.write(packages)
    release = _run([
        "apt-ftparchive",
        "-o", "APT::FTPArchive::Release::Origin=opsctl",
        "-o", "APT::FTPArchive::Release::Label=opsctl offline mirror",
        "-o", "APT::FTPArchive::Release::Suite=bookworm",
        "-o", "APT::FTPArchive::Release::Description=offline mirror of the opsctl roles' packages",
        "release", "."], cwd=repo, timeout=120)
    (repo / "Release").write_text(release)
    env = {**os.environ, "GNUPGHOME": str(home)}
    sign = ["gpg", "--batch", "--yes", "--local-user", KEY_UID]
    _run([*sign, "--clearsign", "-o", str(repo / "InRelease"), str(repo / "Release")], env=env)
    _run([*sign, "--detach-sign", "-o", str(repo / "Release.gpg"), str(repo / "Release")],
         env=env)
    _run(["gpg", "--batch", "--yes", "--export", "-o", str(repo / PUBLIC_KEY), KEY_UID], env=env)


def _deb_fields(path: Path) -> dict[str, str]:
    out = _run(["dpkg-deb", "--show", "--showformat=${Package}\t${Version}\t${Architecture}",
                str(path)], timeout=30)
    name, version, arch = out.split("\t")
    return {"name": name, "version": version, "arch": arch, "file": path.name}


def download(packages: Sequence[str], work: Path, *, sources: Path = Path("/etc/apt"),
             status: Path | None = None, progress: Progress = lambda _msg: None) -> list[Path]:
    """Resolve `packages` with apt against `status` (a dpkg status file; none: a host with
    nothing installed) in the private apt tree `work`; the .debs in its archive cache."""
    _prepare_work(work, sources)
    if status is not None:
        shutil.copyfile(status, work / "state" / "status")
    apt = ["apt-get", "-q", *_apt_options(work)]
    progress("apt-get update (private lists)")
    _run([*apt, "update"])
    progress(f"resolving and downloading {len(packages)} packages with their dependencies")
    _run([*apt, "-y", "install", *packages], timeout=1800)
    return sorted((work / "cache" / "archives").glob("*.deb"))


def sign_index(repo: Path, debs: list[Path]) -> None:
    """Index `repo` as a flat repository and sign it with the mirror's key (the hosts'
    trusted one), made on first use."""
    home = cache_dir() / "mirror-key"
    try:
        _ensure_key(home)
        _write_index(repo, home, debs)
    finally:
        # gpg starts an agent for the key and leaves it running after the build; nothing
        # else on the control node uses it.
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
                       capture_output=True, check=False, timeout=30)


def build(roles_dir: Path | None = None, *, refresh: bool = False,
          sources: Path = Path("/etc/apt"), security_data: str | None = None,
          fetcher: secdata.Fetcher = secdata.fetch,
          progress: Progress = lambda _msg: None) -> MirrorResult:
    """Make the mirror hold every package the roles need, and Debian's security data; a no-op
    when it already does both.

    The security data is fetched (from `security_data`, a URL or a file, else
    $OPSCTL_SECURITY_DATA_URL, else the source the mirror's data came from; nothing is fetched
    when none is known) whenever the repository is rebuilt, and into a current repository when
    `security_data` names one. A remembered source that fails keeps the previous data; a named
    source that cannot be read is the caller's mistake (InvalidInput), before any change."""
    start = time.monotonic()
    packages = requested_packages(roles_dir or project_root() / "roles")
    repo = mirror_dir()
    source = security_data or secdata.default_source(repo)
    with _locked(cache_dir() / "mirror.lock"):
        if not refresh and is_current(packages, repo):
            manifest = read_manifest(repo) or {}
            security = None
            if security_data or (source and secdata.read_header(repo) is None):
                gathered = _gather(source, bool(security_data), fetcher, progress)
                security = secdata.store(repo, gathered) if gathered.document else \
                    secdata.keep(repo, None, gathered)
            return MirrorResult(repo, len(manifest.get("debs", [])), manifest.get("bytes", 0),
                                False, time.monotonic() - start, security)
        gathered = _gather(source, bool(security_data), fetcher, progress)
        debs = download(packages, cache_dir() / "mirror-work", sources=sources,
                        progress=progress)
        if not debs:
            raise MirrorError("mirror build: apt downloaded nothing")

        staging = cache_dir() / "mirror.new"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        wanted = _newest_per_package(debs)
        for deb in wanted:
            if _same_fs(deb, staging):
                os.link(deb, staging / deb.name)
            else:
                shutil.copy2(deb, staging / deb.name)
        progress(f"indexing and signing {len(wanted)} packages")
        sign_index(staging, wanted)
        security = secdata.store(staging, gathered) if gathered.document else \
            secdata.keep(staging, repo if repo.exists() else None, gathered)
        total = sum(d.stat().st_size for d in wanted)
        manifest = {
            "format": FORMAT, "hash": request_hash(packages),
            "built": datetime.now(UTC).isoformat(timespec="seconds"),
            "requested": packages, "bytes": total,
            "debs": [_deb_fields(d) for d in wanted],
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
        old = cache_dir() / "mirror.old"
        shutil.rmtree(old, ignore_errors=True)
        if repo.exists():
            repo.rename(old)
        staging.rename(repo)
        shutil.rmtree(old, ignore_errors=True)
        return MirrorResult(repo, len(wanted), total, True, time.monotonic() - start,
                            security)


def _gather(source: str | None, named: bool, fetcher: secdata.Fetcher,
            progress: Progress) -> secdata.Gathered:
    if source is None:
        return secdata.Gathered(None, "Debian's security data", secdata.NO_SOURCE)
    progress(f"fetching Debian's security data from {source}")
    gathered = secdata.gather(source, fetcher)
    if named and gathered.document is None:
        raise InvalidInput([Problem("--security-data", source, str(gathered.problem))])
    return gathered


def _same_fs(a: Path, b: Path) -> bool:
    return a.stat().st_dev == b.stat().st_dev


def _newest_per_package(debs: list[Path]) -> list[Path]:
    """The archive cache keeps old versions across builds; the mirror takes the newest."""
    by_name: dict[str, list[Path]] = {}
    for deb in debs:
        by_name.setdefault(deb.name.split("_")[0], []).append(deb)
    newer = cmp_to_key(lambda a, b: compare_versions(_deb_version(a), _deb_version(b)))
    return sorted(max(candidates, key=newer) for candidates in by_name.values())


def _deb_version(deb: Path) -> str:
    """NAME_VERSION_ARCH.deb's version (apt writes an epoch's colon as %3a)."""
    return deb.name.split("_")[1].replace("%3a", ":")
