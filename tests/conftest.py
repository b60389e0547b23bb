from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty state directory so unit tests never read or write the machine's."""
    path = tmp_path / "state"
    monkeypatch.setenv("OPSCTL_STATE_DIR", str(path))
    return path


@pytest.fixture
def site_copy(tmp_path: Path) -> Path:
    """A writable copy of the reference site for tests that break it on purpose."""
    target = tmp_path / "site"
    shutil.copytree(ROOT / "inventory" / "reference", target)
    return target
