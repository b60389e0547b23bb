"""opsctl.transport: which SSH a site gets, and what a remote command's result means.

A local shell stands in for `ssh HOST`: like sshd, it gets the command as one string."""

from __future__ import annotations

import pytest

from opsctl import transport
from opsctl.transport import HostUnreachable, SshTransport

# `sh -c 'shift; exec sh -c "$1"' fake -- CMD` runs CMD through a shell, as sshd would.
LOCAL = ["/bin/sh", "-c", 'shift; exec /bin/sh -c "$1"', "fake"]


def local() -> SshTransport:
    return SshTransport({"h1": LOCAL}, how=" (test)")


def test_words_arrive_as_given() -> None:
    done = local().run("h1", ["printf", "%s|", "two words", "it's", "$HOME", ";rm"])
    assert done.rc == 0
    assert done.stdout == "two words|it's|$HOME|;rm|"


def test_binary_stdin_round_trips() -> None:
    blob = bytes(range(256)) * 4
    done = local().run("h1", ["sh", "-c", "od -An -tx1 | wc -w"], stdin=blob)
    assert done.stdout.strip() == str(len(blob))


def test_exit_codes_and_output() -> None:
    done = local().run("h1", ["sh", "-c", "echo out; echo err >&2; exit 3"], stdin="x")
    assert (done.rc, done.output, done.message) == (3, "out\nerr", "err")


def test_ssh_failure_and_timeout_are_unreachable() -> None:
    with pytest.raises(HostUnreachable, match=r"h1: unreachable over SSH \(test\) \(no route\)"):
        local().run("h1", ["sh", "-c", "echo no route >&2; exit 255"])
    with pytest.raises(HostUnreachable, match="no answer within 1 s running sleep"):
        local().run("h1", ["sleep", "5"], timeout=1)
    with pytest.raises(HostUnreachable, match="not a host of this site"):
        local().run("db9", ["true"])


def test_lab_site_uses_the_labs_ssh_config(tmp_path, monkeypatch) -> None:
    from opsctl.site import load_site

    monkeypatch.setenv("OPSCTL_STATE_DIR", str(tmp_path))
    site = load_site("reference")
    plain = transport.for_site(site)
    assert plain.prefix["db1"][-1] == f"root@{site.hosts['db1'].address}"
    assert "BatchMode=yes" in plain.prefix["db1"]

    from opsctl.lab.state import lab_dir

    lab = lab_dir(site.name)
    lab.mkdir(parents=True)
    (lab / "ssh_config").write_text("Host *\n")
    labbed = transport.for_site(site)
    assert labbed.prefix["db1"] == ["ssh", "-F", str(lab / "ssh_config"), "db1"]
