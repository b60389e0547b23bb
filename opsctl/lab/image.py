"""The cached base image every lab host boots on: Debian 12 minbase + systemd + ssh + python3
+ sudo (what a province's bare server has: its admin account administers through sudo)."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from opsctl.errors import LabError, PrerequisiteMissing
from opsctl.paths import cache_dir

SUITE = "bookworm"
INCLUDE = ("systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "python3-apt",
           "iproute2", "sudo")
# Bump when the preparation below changes, so cached images are rebuilt.
PREPARATION = "3"
DEFAULT_MIRROR = "http://deb.debian.org/debian"


def image_id() -> str:
    digest = hashlib.sha256(f"{SUITE}|{','.join(INCLUDE)}|{PREPARATION}".encode()).hexdigest()
    return f"{SUITE}-{digest[:10]}"


def image_root() -> Path:
    return cache_dir() / "images" / image_id() / "rootfs"


def debian_mirror(sources_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror the machine's own apt sources name (the only one known to answer)."""
    candidates: list[Path] = [sources_dir / "sources.list"]
    candidates += sorted((sources_dir / "sources.list.d").glob("*"))
    for path in candidates:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.suffix == ".sources":
            for stanza in text.split("\n\n"):
                uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
                suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
                if uris and suites and SUITE in suites.group(1).split():
                    return uris.group(1).rstrip("/")
        else:
            for line in text.splitlines():
                m = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)\s", line)
                if m and m.group(2) == SUITE:
                    return m.group(1).rstrip("/")
    return DEFAULT_MIRROR


def ensure_image(log: Path) -> tuple[Path, bool]:
    """Return the image's root, building it once (about a minute) if it is not cached.

    Built in a temporary directory and renamed into place, so an interrupted build
    never leaves a half image that later labs would boot.
    """
    root = image_root()
    if (root / "etc" / "os-release").exists():
        return root, False
    if not shutil.which("debootstrap"):
        raise PrerequisiteMissing("debootstrap is not installed (apt-get install debootstrap)")
    root.parent.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=root.parent.parent))
    try:
        with log.open("ab") as out:
            cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(INCLUDE)}",
                   SUITE, str(tmp / "rootfs"), debian_mirror()]
            result = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
        if result.returncode != 0:
            raise LabError(f"debootstrap failed (exit {result.returncode}); see {log}")
        _prepare(tmp / "rootfs")
        root.parent.mkdir(parents=True, exist_ok=True)
        (tmp / "rootfs").rename(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root, True


def _prepare(root: Path) -> None:
    """Make the image a template: nothing host-specific stays in it."""
    for key in (root / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc" / "machine-id").write_text("")
    (root / "etc" / "hostname").write_text("localhost\n")
    apt_lists = root / "var" / "lib" / "apt" / "lists"
    for item in apt_lists.glob("*_*"):
        item.unlink()
    shutil.rmtree(root / "var" / "cache" / "apt" / "archives", ignore_errors=True)
    (root / "var" / "cache" / "apt" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    # No package source until the base role points apt at the offline mirror.
    (root / "etc" / "apt" / "sources.list").write_text("")
    for sources in (root / "etc" / "apt" / "sources.list.d").glob("*"):
        sources.unlink()
