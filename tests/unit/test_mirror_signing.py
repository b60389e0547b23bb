"""The offline mirror's index is signed with the mirror's own key, and the signing leaves no
gpg-agent running on the control node (gpg starts one per key directory and keeps it)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from opsctl.mirror import build

TOOLS = ("gpg", "gpgconf", "dpkg-scanpackages", "apt-ftparchive")


def agents_for(home: Path) -> list[int]:
    """gpg-agent processes started for this key directory (their command line names it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"gpg-agent") and str(home).encode() in b" ".join(argv):
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(any(subprocess.run(["which", t], capture_output=True).returncode
                        for t in TOOLS), reason="gpg and dpkg-dev are the mirror build's")
def test_the_index_is_signed_and_no_agent_stays(tmp_path, monkeypatch) -> None:
    # gpg-agent's socket lives in the key directory: a Unix socket's path is at most 107
    # bytes, which pytest's own temporary directories can exceed.
    with tempfile.TemporaryDirectory(prefix="opsctl-gpg-", dir="/tmp") as short:
        monkeypatch.setenv("OPSCTL_CACHE_DIR", short)
        signed_without_an_agent_left(tmp_path, Path(short) / "mirror-key")


def signed_without_an_agent_left(tmp_path: Path, home: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    build.sign_index(repo, [])

    verified = subprocess.run(["gpg", "--batch", "--verify", str(repo / "InRelease")],
                              env={**os.environ, "GNUPGHOME": str(home)},
                              capture_output=True, text=True, check=False)
    assert verified.returncode == 0, verified.stderr
    assert (repo / build.PUBLIC_KEY).stat().st_size > 0
    assert agents_for(home) == []
