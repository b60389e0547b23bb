from __future__ import annotations

import os
import shutil
import tempfile

import pytest


@pytest.fixture(autouse=True)
def no_site_named(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """Unit tests see no OPSCTL_SITE and no site the operator stored with `opsctl site use`
    on this machine (tests that need a state directory of their own still take `state_dir`)."""
    monkeypatch.delenv("OPSCTL_SITE", raising=False)
    monkeypatch.setenv("OPSCTL_STATE_DIR", str(tmp_path_factory.mktemp("state")))


@pytest.fixture(scope="session", autouse=True)
def private_temp_dir():
    """The system's temp dir, for this session alone: a control socket directory a test makes
    there (a deep state directory's) is gone with the session, not left in the machine's /tmp."""
    short = tempfile.mkdtemp(prefix="oc-", dir="/tmp")
    os.chmod(short, 0o1777)  # as /tmp is: other users (postgres, in a test) make theirs here
    saved, tempfile.tempdir = tempfile.tempdir, short
    yield short
    tempfile.tempdir = saved
    shutil.rmtree(short, ignore_errors=True)
