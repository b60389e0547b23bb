"""opsctl.connection: the site's connection model, validated, turned into one ssh_config and
Ansible's variables, for the lab, a direct site and a site behind a bastion."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile

import pytest
from connection_sites import BASTION, ROOT, load_copy, site_copy

from opsctl import connection
from opsctl.connection import ansible_vars, become_password, render_ssh_config, resolve
from opsctl.errors import InvalidInput, NotFound, OpsctlError
from opsctl.site.schema import ConnectionSpec


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("OPSCTL_STATE_DIR", str(tmp_path / "state"))


def _blocks(config: str) -> dict[str, list[str]]:
    blocks: dict[str, list[str]] = {}
    current = None
    for line in config.splitlines():
        if line.startswith("Host "):
            current = line.split()[1]
            blocks[current] = [line]
        elif current and line.strip():
            blocks[current].append(line.strip())
    return blocks


def test_bastion_site_config(tmp_path) -> None:
    site = load_copy(tmp_path, BASTION)
    conn = resolve(site)
    config = render_ssh_config(conn)
    blocks = _blocks(config)
    # The bastion is reached directly; everything else through it, on the site's port.
    assert "ProxyJump mon1" not in blocks["mon1"]
    assert blocks["mon1"][0] == "Host mon1 172.31.10.11"
    assert {"HostName 172.31.30.11", "Port 2222", "User ops", "HostKeyAlias db1",
            "ProxyJump mon1"} <= set(blocks["db1"])
    every = blocks["*"]
    for line in ("IdentityFile /keys/ops_ed25519", "IdentitiesOnly yes",
                 "StrictHostKeyChecking yes", "GlobalKnownHostsFile /dev/null",
                 "ControlMaster auto", "BatchMode yes",
                 f"UserKnownHostsFile {tmp_path}/state/sites/reference/known_hosts"):
        assert line in every
    assert conn.admin_pubkey.name == "ops_ed25519.pub"
    assert conn.become_file == tmp_path / "state" / "secrets" / "reference" / "ops-password"


def test_host_variables_override_the_site(tmp_path) -> None:
    site = load_copy(tmp_path, BASTION, {"app1": {"opsctl_mgmt_address": "172.31.10.121",
                                                  "ansible_port": 22, "ansible_user": "deploy"}})
    blocks = _blocks(render_ssh_config(resolve(site)))
    # Reached on its management address, still known by its name and service address.
    assert blocks["app1"][0] == "Host app1 172.31.20.21"
    assert {"HostName 172.31.10.121", "Port 22", "User deploy"} <= set(blocks["app1"])
    assert "Port 2222" in blocks["app2"]


def test_external_bastion(tmp_path) -> None:
    site = load_copy(tmp_path, {"user": "ops", "jump": {"address": "198.51.100.7",
                                                        "user": "jumper"}})
    blocks = _blocks(render_ssh_config(resolve(site)))
    assert {"HostName 198.51.100.7", "Port 22", "User jumper",
            "HostKeyAlias bastion"} <= set(blocks["bastion"])
    assert all("ProxyJump bastion" in blocks[h] for h in site.hosts)
    assert resolve(site).jump_order()[0] == "bastion"


def test_direct_root_site_and_its_ansible_vars(tmp_path) -> None:
    site = load_copy(tmp_path, None)  # no section: SSH as root on port 22, no bastion
    conn = resolve(site)
    assert conn.via == "ssh" and not conn.sudo
    assert "ProxyJump" not in render_ssh_config(conn)
    assert ansible_vars(conn) == {"ansible_ssh_common_args": f"-F {conn.ssh_config}"}


def test_non_root_ansible_vars_name_the_password_file_not_the_password(tmp_path) -> None:
    conn = resolve(load_copy(tmp_path, BASTION))
    secret = tmp_path / "pw"
    found = ansible_vars(conn, secret)
    assert found["ansible_become"] is True and found["ansible_become_method"] == "sudo"
    lookup = f"{{{{ lookup('ansible.builtin.file', '{secret}') }}}}"
    assert found["ansible_become_password"] == lookup


def test_an_ansible_task_refused_by_sudo_reads_like_the_transports_refusal(tmp_path) -> None:
    conn = resolve(load_copy(tmp_path, BASTION))
    said = "Task failed: error occurred on host app1: sudo password is incorrect"
    assert connection.ansible_sudo_refused(conn, "app1", said) == (
        f"app1: sudo refused ops (sudo password is incorrect); check the password at "
        f"{conn.become_file}")
    # any other failure keeps Ansible's own words
    assert connection.ansible_sudo_refused(conn, "app1", "Task failed: no space left") is None


def test_become_password_sources(tmp_path) -> None:
    conn = resolve(load_copy(tmp_path, BASTION))
    with pytest.raises(connection.BecomePasswordMissing, match="no sudo password for ops at"):
        become_password(conn)
    conn.become_file.parent.mkdir(parents=True)
    # The password lookup's own format, as the hardening role leaves it.
    conn.become_file.write_text("s3cret salt=abcdefgh\n")
    assert become_password(conn) == "s3cret"
    nopasswd = resolve(load_copy(tmp_path / "b", {**BASTION, "become": {"password": "none"}}))
    assert become_password(nopasswd) is None
    asked = resolve(load_copy(tmp_path / "c", {**BASTION, "become": {"password": "prompt"}}))
    connection.set_prompt(lambda _q: "typed")
    try:
        assert become_password(asked) == "typed"
    finally:
        connection.set_prompt(None)
        connection._prompted.clear()


def test_via_lab_reads_the_labs_model_and_never_guesses(tmp_path) -> None:
    site = load_copy(tmp_path, {"via": "lab"})
    with pytest.raises(NotFound, match="no lab of it is up"):
        resolve(site)
    from opsctl.lab.state import lab_dir

    lab_dir(site.name).mkdir(parents=True)
    connection.write_lab_model(site.name, ConnectionSpec(identity_file="/lab/key",
                                                         known_hosts="/lab/known"))
    conn = resolve(site)
    assert conn.via == "lab" and conn.ssh_config == lab_dir(site.name) / "ssh_config"
    assert "UserKnownHostsFile /lab/known" in render_ssh_config(conn)
    # A site that says ssh keeps its own connection even with a lab of its name up.
    own = load_copy(tmp_path / "own", BASTION)
    lab_dir(own.name).mkdir(parents=True, exist_ok=True)
    assert resolve(own).via == "ssh"
    assert resolve(own, "lab").via == "lab"


def test_the_lab_is_reached_as_its_admin_through_sudo_never_as_root(tmp_path) -> None:
    """What `lab up` writes: the admin the lab's hosts are made with, its sudo password the
    site's secret (the file hardening keeps it in), handed to Ansible as a file lookup."""
    from opsctl.lab import ssh as lab_ssh
    from opsctl.lab.state import lab_dir
    from opsctl.secrets import secrets_dir

    site = load_copy(tmp_path, {"via": "lab"})
    lab = lab_dir(site.name)
    lab.mkdir(parents=True)
    connection.write_lab_model(site.name, lab_ssh.connection_spec(site, lab))
    conn = resolve(site)
    assert {e.user for e in conn.endpoints.values()} == {lab_ssh.ADMIN} != {"root"}
    assert conn.become_file == secrets_dir(site.name) / f"{lab_ssh.ADMIN}-password"
    variables = ansible_vars(conn, conn.become_file)
    assert variables["ansible_become"] is True
    assert str(conn.become_file) in variables["ansible_become_password"]
    assert "User ops" in render_ssh_config(conn) and "User root" not in render_ssh_config(conn)


@pytest.mark.parametrize(("connection_section", "host_vars", "expected"), [
    ({"jump": {"host": "db1"}}, None,
     "site.connection.jump.host: db1 is in zone secure; the bastion must be in the control "
     "node's zone (mgmt)"),
    ({"jump": {"host": "nope"}}, None, "site.connection.jump.host: unknown host 'nope'"),
    ({"jump": {"host": "mon1", "address": "1.2.3.4"}}, None,
     "site.connection.jump: Value error, give exactly one of host"),
    ({"become": {"password": "file"}}, None,
     "site.connection.become: Value error, file is required with password: file"),
    ({"via": "carrier-pigeon"}, None, "site.connection.via: Input should be 'ssh' or 'lab'"),
    ({"user": "Root Admin"}, None, "site.connection.user: String should match pattern"),
    (None, {"db2": {"ansible_port": 70000}}, "ansible_port: 70000 is not a port"),
    (None, {"db2": {"ansible_port": 2200}},
     "site.connection.port: no tcp flow lets opsctl reach db2:2200 (from the control node, or "
     "through the bastion)"),
    (None, {"db2": {"opsctl_mgmt_address": "db2.mgmt"}},
     "opsctl_mgmt_address: 'db2.mgmt' is not an IP address"),
])
def test_bad_connection_is_one_line_and_exit_2(tmp_path, connection_section, host_vars,
                                               expected) -> None:
    directory = site_copy(tmp_path, connection_section, host_vars)
    with pytest.raises(InvalidInput) as caught:
        from opsctl.site.model import load_site

        load_site(str(directory))
    assert any(expected in line for line in caught.value.lines()), caught.value.lines()
    done = subprocess.run([sys.executable, "-m", "opsctl", "site", "validate", str(directory)],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 2
    assert expected in done.stderr and "Traceback" not in done.stderr


def _control_path(config: str) -> str:
    return next(line.split(None, 1)[1] for line in config.splitlines()
                if line.strip().startswith("ControlPath "))


def test_a_deep_state_directory_still_gets_a_control_socket_ssh_can_bind(tmp_path, monkeypatch,
                                                                         private_temp_dir):
    # A province's state directory may sit under a long path; ssh refuses a ControlPath longer
    # than a unix socket allows ("ControlPath too long") and every command fails.
    deep = tmp_path / ("province-" + "x" * 60) / "state"
    monkeypatch.setenv("OPSCTL_STATE_DIR", str(deep))
    conn = resolve(load_copy(tmp_path, BASTION))
    config_file = connection.write(conn)
    path = _control_path(config_file.read_text())
    assert not path.startswith(str(deep))
    # the longest name ssh binds: %C (40 hex) and its 17-character temporary suffix
    longest = path.replace("%C", "f" * 40) + ".abcdefghijklmnop"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(longest)
    mode = os.stat(os.path.dirname(longest)).st_mode & 0o777
    assert mode == 0o700
    # a short state directory keeps its sockets beside its ssh_config, as before
    monkeypatch.setenv("OPSCTL_STATE_DIR", f"{private_temp_dir}/s")
    short = resolve(load_copy(tmp_path / "b", BASTION))
    assert _control_path(render_ssh_config(short)) == f"{short.directory}/cm-%C"


def test_a_socket_directory_someone_else_owns_is_refused(tmp_path, monkeypatch, private_temp_dir):
    monkeypatch.setenv("OPSCTL_STATE_DIR", str(tmp_path / ("deep-" + "y" * 80)))
    monkeypatch.setattr(tempfile, "tempdir", f"{private_temp_dir}/other")
    conn = resolve(load_copy(tmp_path, BASTION))
    theirs = conn.control_dir.parent
    theirs.mkdir(parents=True)
    os.chown(theirs, 65534, 65534)
    with pytest.raises(OpsctlError, match="not a directory of this user's own"):
        connection.write(conn)
