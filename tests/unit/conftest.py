from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def no_site_named(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """Unit tests see no OPSCTL_SITE and no site the operator stored with `opsctl site use`
    on this machine (tests that need a state directory of their own still take `state_dir`)."""
    monkeypatch.delenv("OPSCTL_SITE", raising=False)
    monkeypatch.setenv("OPSCTL_STATE_DIR", str(tmp_path_factory.mktemp("state")))
