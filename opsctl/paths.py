"""Where opsctl keeps its project files, state and caches."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from opsctl.errors import InvalidInput, NotFound, OpsctlError, Problem


def project_root() -> Path:
    """The directory holding inventory/, playbooks/ and roles/.

    OPSCTL_ROOT wins; otherwise the checkout this package was installed from
    (editable installs), otherwise the current directory.
    """
    env = os.environ.get("OPSCTL_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parents[1]
    if (here / "playbooks").is_dir() and (here / "roles").is_dir():
        return here
    return Path.cwd()


def state_dir() -> Path:
    """Run history, audit log and lab state. Root-owned, not world-readable."""
    return Path(os.environ.get("OPSCTL_STATE_DIR", "/var/lib/opsctl"))


def cache_dir() -> Path:
    """Base images and the offline mirror: expensive to make, safe to share between labs."""
    return Path(os.environ.get("OPSCTL_CACHE_DIR", "/var/cache/opsctl"))


def ensure_private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def ensure_own_private_dir(path: Path) -> Path:
    """A 0700 directory in a place others can write (the system's temp dir): made by us, or,
    when it exists, a real directory we own; anything else is refused rather than used,
    since another user's directory there could catch what we put in it."""
    for part in (path.parent, path):
        with contextlib.suppress(FileExistsError):
            part.mkdir(mode=0o700)
        st = part.lstat()
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            raise OpsctlError(f"{part}: not a directory of this user's own; remove it or set "
                              "TMPDIR to a private directory")
        part.chmod(0o700)
    return path


def site_dir(site: str) -> Path:
    """A site is named (inventory/NAME) or given as a path to its inventory directory."""
    candidate = Path(site)
    if candidate.is_dir() and (candidate / "group_vars").exists():
        return candidate.resolve()
    named = project_root() / "inventory" / site
    if named.is_dir():
        return named
    raise NotFound(f"site {site!r}: no directory {named} (and {site!r} is not a site directory)")


def write_named_file(path: Path, text: str, option: str = "--out") -> Path:
    """Write a file the operator named with `option`; when it cannot be written (no such
    directory, no permission) InvalidInput names the option, the file and why."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InvalidInput([Problem(option, str(path),
                                    f"cannot write: {exc.strerror or exc}")]) from None
    return path


def write_private(path: Path, content: str | bytes) -> Path:
    """Replace `path` whole with a file only root reads (mode 0600 from the start): readers
    see the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.touch(mode=0o600)
    if isinstance(content, bytes):
        tmp.write_bytes(content)
    else:
        tmp.write_text(content)
    tmp.replace(path)
    return path
