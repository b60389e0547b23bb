"""The control node's state backed up, verified and restored: what is kept, what is left,
and that a wrong passphrase, a changed byte or an occupied state is refused whole."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from opsctl import audit
from opsctl.state import backup as sb

PASS = "correct horse battery"


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "state"
    monkeypatch.setenv("OPSCTL_STATE_DIR", str(root))
    files = {
        "secrets/reference/ops-password": "Old.password-123\n",
        "secrets/reference/postgres": "pg-secret\n",
        "pki/reference/ca.key": "-----BEGIN PRIVATE KEY-----\n",
        "pki/reference/ca.crt": "-----BEGIN CERTIFICATE-----\n",
        "sites/reference/known_hosts": "db1 ssh-ed25519 AAAA\n",
        "drills/20261206T020439.678Z-c039.json": "{}\n",
        "site": "reference\n",
        "runs/20261206T014254.773Z-2c10/run.json": '{"id": "x"}\n',
        "runs/20261206T014254.773Z-2c10/artifacts/job_events/1.json": "{}\n" * 1000,
        "labs/reference/connection.yml": "lab only\n",
        "facts/reference/db1.json": "{}\n",
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o600)
    audit.append("apply", {"site": "reference"}, "ok")
    audit.append("site.trust", {"site": "reference"}, "pinned 7")
    return root


def test_what_is_kept_and_what_is_left(state: Path) -> None:
    assert sb.members(state) == [
        "audit.log", "drills/20261206T020439.678Z-c039.json", "pki/reference/ca.crt",
        "pki/reference/ca.key", "runs/20261206T014254.773Z-2c10/run.json",
        "secrets/reference/ops-password", "secrets/reference/postgres", "site",
        "sites/reference/known_hosts"]


def test_backup_then_restore_on_an_empty_control_node(state: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "state.bak"
    written = sb.backup(out, PASS)
    assert out.stat().st_mode & 0o777 == 0o600
    assert (written.files, written.sites, written.audit_records) == (9, ["reference"], 2)
    assert b"Old.password" not in out.read_bytes()  # encrypted
    last = audit.records()[-1]
    assert last["action"] == "state.backup" and written.sha256 in last["result"]

    fresh = tmp_path / "new-node"
    monkeypatch.setenv("OPSCTL_STATE_DIR", str(fresh))
    restored = sb.restore(out, PASS)
    assert restored.files == 9 and restored.replaced is None
    for name in sb.members(state):
        if name != "audit.log":
            assert (fresh / name).read_bytes() == (state / name).read_bytes(), name
            assert (fresh / name).stat().st_mode & 0o077 == 0, name
    assert (fresh / "secrets").stat().st_mode & 0o777 == 0o700
    assert not (fresh / "labs").exists() and not (fresh / "facts").exists()
    # the restored log is the backed-up chain plus the restore's own record, and holds
    assert audit.verify().ok
    assert [r["action"] for r in audit.records()] == ["apply", "site.trust", "state.restore"]


def test_a_wrong_passphrase_or_a_changed_byte_is_refused(state: Path, tmp_path: Path) -> None:
    out = tmp_path / "state.bak"
    sb.backup(out, PASS)
    with pytest.raises(sb.StateBackupError, match="wrong passphrase, or the file was changed"):
        sb.verify(out, "another passphrase")
    data = bytearray(out.read_bytes())
    data[-5] ^= 1
    damaged = tmp_path / "damaged.bak"
    damaged.write_bytes(bytes(data))
    with pytest.raises(sb.StateBackupError, match="wrong passphrase, or the file was changed"):
        sb.verify(damaged, PASS)
    (tmp_path / "other").write_text("hello")
    with pytest.raises(sb.StateBackupError, match="not an opsctl state backup"):
        sb.verify(tmp_path / "other", PASS)


def test_an_occupied_state_is_refused_or_moved_aside(state: Path, tmp_path: Path) -> None:
    out = tmp_path / "state.bak"
    sb.backup(out, PASS)
    (state / "secrets/reference/ops-password").write_text("Changed.since-456\n")
    with pytest.raises(sb.StateBackupError, match="already holds audit.log, site, secrets, "
                                                  "pki, sites, drills"):
        sb.restore(out, PASS)
    assert (state / "secrets/reference/ops-password").read_text() == "Changed.since-456\n"
    restored = sb.restore(out, PASS, force=True)
    assert (state / "secrets/reference/ops-password").read_text() == "Old.password-123\n"
    assert restored.replaced is not None
    assert (restored.replaced / "secrets/reference/ops-password").read_text() == \
        "Changed.since-456\n"


def test_a_broken_audit_log_is_not_backed_up(state: Path, tmp_path: Path) -> None:
    log = state / "audit.log"
    lines = log.read_text().splitlines()
    record = json.loads(lines[0])
    record["result"] = "edited"
    log.write_text("\n".join([json.dumps(record), *lines[1:]]) + "\n")
    with pytest.raises(sb.StateBackupError, match="line 1: content does not match"):
        sb.backup(tmp_path / "state.bak", PASS)
    assert not (tmp_path / "state.bak").exists()


def test_bad_input_leaves_everything_as_it_was(state: Path, tmp_path: Path) -> None:
    with pytest.raises(sb.InvalidInput, match="at least 12 characters"):
        sb.backup(tmp_path / "x.bak", "short")
    existing = tmp_path / "exists.bak"
    existing.write_text("keep me")
    with pytest.raises(sb.InvalidInput, match="exists; name a new file"):
        sb.backup(existing, PASS)
    assert existing.read_text() == "keep me"
    with pytest.raises(sb.InvalidInput, match="No such file"):
        sb.restore(tmp_path / "missing.bak", PASS)


def test_the_cli_round_trip_with_a_passphrase_file(state: Path, tmp_path: Path) -> None:
    secret = tmp_path / "passphrase"
    secret.write_text(PASS + "\n")
    out = tmp_path / "state.bak"
    env = {**os.environ, "OPSCTL_STATE_DIR": str(state)}

    def opsctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "opsctl", "state", *args], env=env,
                              capture_output=True, text=True, check=False, timeout=120)

    done = opsctl("backup", str(out), "--passphrase-file", str(secret))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"wrote {out}: 9 files of sites reference")
    done = opsctl("verify", str(out), "--passphrase-file", str(secret), "-o", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["audit_records"] == 2
    secret.write_text("not the passphrase\n")
    done = opsctl("verify", str(out), "--passphrase-file", str(secret))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"opsctl: {out}: wrong passphrase, or the file was changed since it was written"]
