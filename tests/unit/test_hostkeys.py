"""opsctl.hostkeys: pinning, importing and replacing the site's host keys (no hosts: the
fetch is faked; fingerprints are checked against ssh-keygen's own)."""

from __future__ import annotations

import subprocess

import pytest
from connection_sites import BASTION, load_copy

from opsctl import hostkeys
from opsctl.connection import resolve
from opsctl.errors import InvalidInput
from opsctl.hostkeys import HostKey, HostKeyUnknown


@pytest.fixture
def conn(tmp_path, monkeypatch):
    monkeypatch.setenv("OPSCTL_STATE_DIR", str(tmp_path / "state"))
    return resolve(load_copy(tmp_path, BASTION))


def _keypair(tmp_path, name: str) -> tuple[str, str]:
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    ktype, key = path.with_suffix(".pub").read_text().split()[:2]
    return ktype, key


def test_fingerprint_is_openssh_s(tmp_path) -> None:
    ktype, key = _keypair(tmp_path, "k")
    listed = subprocess.run(["ssh-keygen", "-lf", str(tmp_path / "k.pub")], capture_output=True,
                            text=True, check=True).stdout.split()[1]
    assert hostkeys.fingerprint(key) == listed


def test_trust_pins_the_bastion_first_then_what_is_behind_it(conn, tmp_path,
                                                             monkeypatch) -> None:
    keys = {h: _keypair(tmp_path, h) for h in conn.endpoints}
    asked: list[list[str]] = []
    scanned: list[str] = []

    def fake_scan(c, alias, timeout=30):
        # Hosts behind the bastion are only reachable once its key is pinned.
        if alias != "mon1":
            assert "mon1" in hostkeys.pinned(c), f"{alias} scanned before the bastion was pinned"
        scanned.append(alias)
        return HostKey(alias, *keys[alias])

    monkeypatch.setattr(hostkeys, "scan", fake_scan)

    def confirm(offered):
        asked.append([k.alias for k in offered])
        return True

    result = hostkeys.trust(conn, confirm=confirm)
    assert asked[0] == ["mon1"] and sorted(asked[1]) == sorted(set(conn.endpoints) - {"mon1"})
    assert {k.alias for k in result.pinned} == set(conn.endpoints)
    text = conn.known_hosts.read_text()
    assert text.splitlines()[0].startswith("mon1 ssh-ed25519 ")
    # Again: nothing new, nothing asked.
    asked.clear()
    again = hostkeys.trust(conn, confirm=confirm)
    assert again.pinned == [] and sorted(again.unchanged) == sorted(conn.endpoints)
    assert asked == []
    # app2 reinstalled: trust refuses to overwrite; --replace pins the new key.
    keys["app2"] = _keypair(tmp_path, "app2-new")
    with pytest.raises(HostKeyUnknown, match=r"app2: host key changed \(pinned SHA256:"):
        hostkeys.trust(conn, limit=["app2"], confirm=confirm)
    replaced = hostkeys.trust(conn, replace="app2", confirm=confirm)
    assert [k.key for k in replaced.pinned] == [keys["app2"][1]]
    assert [k.key for k in hostkeys.pinned(conn)["app2"]] == [keys["app2"][1]]


def test_refused_confirmation_pins_nothing(conn, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(hostkeys, "scan",
                        lambda c, alias, timeout=30: HostKey(alias, *_keypair(tmp_path, alias)))
    result = hostkeys.trust(conn, confirm=lambda _keys: False)
    # Nothing behind a bastion the operator did not trust is even contacted.
    assert result.pinned == [] and sorted(result.refused) == sorted(conn.endpoints)
    assert hostkeys.pinned(conn) == {}


def test_import_matches_hosts_by_name_or_address(conn, tmp_path) -> None:
    ktype, key = _keypair(tmp_path, "x")
    gathered = tmp_path / "keyscan.txt"
    gathered.write_text(f"# db1 from ssh-keyscan\n[172.31.30.11]:2222 {ktype} {key}\n"
                        f"app1 {ktype} {key}\n198.51.100.9 {ktype} {key}\n")
    result = hostkeys.trust(conn, known_hosts_file=gathered)
    assert sorted(k.alias for k in result.pinned) == ["app1", "db1"]
    empty = tmp_path / "other.txt"
    empty.write_text(f"198.51.100.9 {ktype} {key}\n")
    with pytest.raises(InvalidInput, match="no key for any host of site reference"):
        hostkeys.trust(conn, known_hosts_file=empty)


def test_unknown_host_names_are_refused(conn) -> None:
    with pytest.raises(InvalidInput, match="no such host in site reference"):
        hostkeys.trust(conn, limit=["db9"])
