"""The control node's state, backed up on the converged reference lab and restored on an
empty state directory, manages the site as before: the admin's sudo password and the site's
secrets come from the archive, and the audit log's chain goes on."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

PASSPHRASE = "lab passphrase, not a real one"


def opsctl(state: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPSCTL_STATE_DIR": str(state)}
    return subprocess.run([sys.executable, "-m", "opsctl", *args], env=env, capture_output=True,
                          text=True, check=False, timeout=timeout)


def test_a_restored_state_manages_the_site(reference, lab_state_dir, tmp_path):
    site, _ = reference
    secret = tmp_path / "passphrase"
    secret.write_text(PASSPHRASE + "\n")
    archive = tmp_path / "state.bak"
    done = opsctl(lab_state_dir, "state", "backup", str(archive), "--passphrase-file",
                  str(secret), "-o", "json")
    assert done.returncode == 0, done.stderr
    written = json.loads(done.stdout)
    assert site.name in written["sites"]

    # a new control node under a deep path (pytest's own): its ssh control sockets must still
    # fit a unix socket's 108 bytes
    fresh = tmp_path / "new-control-node"
    done = opsctl(fresh, "state", "restore", str(archive), "--passphrase-file", str(secret))
    assert done.returncode == 0, done.stderr
    for name in (f"secrets/{site.name}/ops-password", f"pki/{site.name}/ca.key"):
        assert (fresh / name).read_bytes() == (lab_state_dir / name).read_bytes(), name
    # the lab's model of how its containers are reached (its paths point into the lab's
    # own directory): the lab belongs to this machine, as a real site's hosts stay where they
    # are. Only that file: the lab directory also holds the containers' live root filesystems.
    (fresh / "labs" / site.name).mkdir(parents=True)
    shutil.copy2(lab_state_dir / "labs" / site.name / "connection.yml",
                 fresh / "labs" / site.name / "connection.yml")
    done = opsctl(fresh, "site", "password", "status", str(site.directory), "-o", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert all(a["matches_site"] is True for a in json.loads(done.stdout))
    # the archived chain, then the restore's record (status reads, it records nothing)
    done = opsctl(fresh, "audit", "verify", "-o", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["records"] == written["audit_records"] + 1
