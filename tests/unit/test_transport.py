"""opsctl.transport: the one way to run a command on a host.

A fake `ssh` on PATH stands in for sshd: like it, it hands the login shell the command as one
string (and records its own argv, so a test can prove the sudo password is never on a command
line). A fake `sudo` stands in for the host's sudo: NOPASSWD, or a password it asks through
SUDO_ASKPASS as the real one does."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from connection_sites import BASTION, load_copy

from opsctl.connection import resolve
from opsctl.transport import (
    BecomeRefused,
    HostKeyChanged,
    HostUnreachable,
    SshTransport,
    remote_command,
)

FAKE_SSH = r'''#!/usr/bin/env python3
import json, os, subprocess, sys
args = sys.argv[1:]
with open(os.environ["FAKE_SSH_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
mode = os.environ.get("FAKE_SSH_MODE", "ok")
if mode == "unreachable":
    sys.stderr.write("ssh: connect to host 172.31.30.11 port 2222: No route to host\n")
    sys.exit(255)
if mode == "controlpath":  # a state directory too deep for a socket's path
    sys.stderr.write("ControlPath too long ('/very/deep/cm-6156388f' >= 108 bytes)\n")
    sys.exit(255)
if mode == "changed":
    sys.stderr.write("@@@@@@@@\n@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @\n"
                     "The fingerprint for the ED25519 key sent by the remote host is\n"
                     "SHA256:NEWNEWNEWNEWNEWNEWNEWNEWNEWNEWNEWNEWNEWNEWN.\n"
                     "Host key verification failed.\n")
    sys.exit(255)
command = args[args.index("--") + 1]
sys.exit(subprocess.run(["/bin/sh", "-c", command]).returncode)
'''
FAKE_SUDO = r'''#!/bin/sh
# fake sudo: -n (NOPASSWD unless FAKE_SUDO_PASSWORD is set) or -A -k -p PROMPT
if [ "$1" = "-n" ]; then
    shift; [ "$1" = "--" ] && shift
    if [ -n "$FAKE_SUDO_PASSWORD" ]; then echo "sudo: a password is required" >&2; exit 1; fi
    exec "$@"
fi
[ "$1" = "-A" ] || { echo "fake sudo: unexpected $1" >&2; exit 99; }
prompt=$4; shift 5
if [ -n "$FAKE_SUDO_PASSWORD" ]; then
    given=$("$SUDO_ASKPASS" "$prompt")
    if [ "$given" != "$FAKE_SUDO_PASSWORD" ]; then
        echo "Sorry, try again." >&2; echo "sudo: 3 incorrect password attempts" >&2; exit 1
    fi
fi
exec "$@"
'''


def _exe(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _exe(bin_dir / "ssh", FAKE_SSH)
    _exe(bin_dir / "sudo", FAKE_SUDO)
    log = tmp_path / "ssh.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SSH_LOG", str(log))
    monkeypatch.setenv("OPSCTL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("FAKE_SUDO_PASSWORD", raising=False)
    return log


def _transport(tmp_path: Path, **connection) -> SshTransport:
    return SshTransport(resolve(load_copy(tmp_path, connection or None)))


def _argvs(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_words_arrive_as_given(fake, tmp_path) -> None:
    done = _transport(tmp_path).run("db1", ["printf", "%s|", "two words", "it's", "$HOME",
                                            ";rm"], timeout=10)
    assert done.rc == 0
    assert done.stdout == "two words|it's|$HOME|;rm|"
    argv = _argvs(fake)[0]
    assert argv[:3] == ["-F", str(tmp_path / "state" / "sites" / "reference" / "ssh_config"),
                        "db1"]


def test_binary_stdin_round_trips(fake, tmp_path) -> None:
    blob = bytes(range(256)) * 4
    done = _transport(tmp_path).run("db1", ["sh", "-c", "od -An -tx1 | wc -w"], stdin=blob,
                                    timeout=10)
    assert done.stdout.strip() == str(len(blob))


def test_a_failed_command_is_a_result_even_with_255(fake, tmp_path) -> None:
    t = _transport(tmp_path)
    done = t.run("db1", ["sh", "-c", "echo out; echo err >&2; exit 3"], stdin="x", timeout=10)
    assert (done.rc, done.output, done.message) == (3, "out\nerr", "err")
    # The remote command's own 255 is not ssh failing.
    assert t.run("db1", ["sh", "-c", "echo mine >&2; exit 255"], timeout=10).rc == 255


def test_unreachable_and_timeout(fake, tmp_path, monkeypatch) -> None:
    t = _transport(tmp_path)
    with pytest.raises(HostUnreachable, match="no answer within 1 s running sleep"):
        t.run("db1", ["sleep", "5"], timeout=1)
    with pytest.raises(HostUnreachable, match="not a host of site reference"):
        t.run("db9", ["true"], timeout=10)
    monkeypatch.setenv("FAKE_SSH_MODE", "unreachable")
    with pytest.raises(HostUnreachable, match=r"db1: unreachable over SSH via ssh \(ssh: "
                                              r"connect to host .* No route to host\)"):
        t.run("db1", ["true"], timeout=10)
    # ssh never ran the command: said as ssh said it, not taken for the command's exit 255
    monkeypatch.setenv("FAKE_SSH_MODE", "controlpath")
    with pytest.raises(HostUnreachable, match=r"db1: unreachable over SSH via ssh "
                                              r"\(ControlPath too long"):
        t.run("db1", ["true"], timeout=10)


def test_changed_host_key_names_both_fingerprints(fake, tmp_path, monkeypatch) -> None:
    from opsctl import hostkeys

    t = _transport(tmp_path)
    key = "AAAAC3NzaC1lZDI1NTE5AAAAIGJ5dGVzYnl0ZXNieXRlc2J5dGVzYnl0ZXNieXRlc2J5"
    hostkeys.pin(t.conn, [hostkeys.HostKey("app2", "ssh-ed25519", key)])
    monkeypatch.setenv("FAKE_SSH_MODE", "changed")
    with pytest.raises(HostKeyChanged) as caught:
        t.run("app2", ["true"], timeout=10)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"app2: host key changed (pinned {hostkeys.fingerprint(key)}, "
                              "offered SHA256:NEWNEWNEW")
    assert "opsctl site trust reference --replace app2" in message


def test_sudo_without_password(fake, tmp_path, monkeypatch) -> None:
    t = _transport(tmp_path, user="ops", become={"password": "none"})
    done = t.run("db1", ["sh", "-c", "echo $0 ran"], timeout=10)
    assert done.stdout.strip() == "sh ran"
    assert _argvs(fake)[-1][-1] == "sudo -n -- sh -c 'echo $0 ran'"
    monkeypatch.setenv("FAKE_SUDO_PASSWORD", "x")
    with pytest.raises(BecomeRefused, match="db1: sudo wants a password for ops"):
        t.run("db1", ["true"], timeout=10)


def test_sudo_password_travels_on_stdin_only(fake, tmp_path, monkeypatch) -> None:
    password = "pa ss'w\"rd$1"
    monkeypatch.setenv("FAKE_SUDO_PASSWORD", password)
    t = _transport(tmp_path, **BASTION)
    t.conn.become_file.parent.mkdir(parents=True)
    t.conn.become_file.write_text(password + "\n")
    # The command still gets its own stdin, after sudo took the password.
    done = t.run("db1", ["sh", "-c", "cat; echo; echo done"], stdin="payload", timeout=10)
    assert done.rc == 0, done.stderr
    assert done.stdout == "payload\ndone\n"
    for argv in _argvs(fake):
        assert not any(password in word or "pa ss" in word for word in argv)
    # The command keeps the login's umask: files a deploy unpacks stay readable to services
    # (a umask 077 around the password file once left a release unreadable).
    mask = os.umask(0o022)
    os.umask(mask)
    assert t.run("db1", ["sh", "-c", "umask"], timeout=10).stdout.strip() == f"{mask:04o}"
    assert remote_command(["true"], sudo=True, with_password=True).startswith("sh -c ")


def test_wrong_sudo_password_is_refused_with_a_clear_line(fake, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_SUDO_PASSWORD", "right")
    t = _transport(tmp_path, **BASTION)
    t.conn.become_file.parent.mkdir(parents=True)
    t.conn.become_file.write_text("wrong\n")
    with pytest.raises(BecomeRefused) as caught:
        t.run("app1", ["true"], timeout=10)
    assert str(caught.value) == (f"app1: sudo refused ops (sudo: 3 incorrect password "
                                 f"attempts); check the password at {t.conn.become_file}")
