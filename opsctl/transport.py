"""How opsctl runs a command on a site's host: the one place that runs ssh.

Every remote action (deploy, releases, check, jobs, backup, db, probes, status, the lab's own
helpers) goes through `Transport.run`: `ssh -F` with the site's generated config (its bastion,
login user, port, key and pinned known_hosts; opsctl.connection), and sudo when the login user
is not root. Failures keep their kind: `HostUnreachable` (ssh itself failed or timed out),
`HostKeyChanged`, `BecomeRefused`; a remote command that ran and failed is a `Result` with its
own exit status, 255 included.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass
from typing import Protocol

from opsctl import hostkeys
from opsctl.connection import Connection, become_password, resolve, sudo_refused, write
from opsctl.errors import OpsctlError
from opsctl.site.model import Site


class HostError(OpsctlError):
    """The command could not be run on the host; the host is failed, the others go on."""

    exit_code = 1


class HostUnreachable(HostError):
    """SSH could not reach the host (down, refused, no key) or it did not answer in time."""


class HostKeyChanged(HostError):
    """The host offered a key other than the one pinned for it."""


class BecomeRefused(HostError):
    """sudo refused the login user (no password given, a wrong one, or no grant)."""


@dataclass(frozen=True)
class Result:
    rc: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stdout then stderr, stripped: what a person would read in a terminal."""
        return "\n".join(p for p in (self.stdout.strip(), self.stderr.strip()) if p)

    @property
    def message(self) -> str:
        """The last line of what the command said, for a one-line error."""
        lines = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return lines[-1] if lines else f"exit {self.rc}"


class Transport(Protocol):
    """What callers need of a transport (tests hand in fakes with the same method)."""

    def run(self, host: str, argv: list[str], stdin: str | bytes | None = None, *,
            timeout: float) -> Result: ...


# sudo with a password: the password is the first line of stdin, read by the login shell
# into a file mktemp makes mode 0600 (no umask here: the command would inherit it) that
# sudo's askpass (`cat`, given the file as its "prompt") prints;
# the rest of stdin is the command's. With a NOPASSWD grant sudo never asks, so the password
# cannot leak into the command's input. It is never on a command line.
SUDO_ASKPASS = ('f=$(mktemp) || exit 125; trap \'rm -f "$f"\' EXIT; '
                'IFS= read -r p; printf "%s\\n" "$p" >"$f"; p=; '
                'SUDO_ASKPASS=/bin/cat sudo -A -k -p "$f" -- "$@"')
ASKPASS_ARGV0 = "opsctl-sudo"
# Lines only ssh itself prints when it fails (255 from the remote command is a result).
_SSH_FAILURE = re.compile(
    r"^(ssh: |kex_exchange_identification|Connection (closed|timed out|refused|reset)|"
    r"Permission denied \(|Host key verification failed|channel \d+: open failed|"
    r"mux_client|Control socket connect|ssh_exchange_identification|banner exchange|"
    r"Bad owner or permissions|Could not resolve|No route to host|Received disconnect|"
    r"@@@@|Load key|Timeout, server|ControlPath too long)", re.MULTILINE)
_SUDO_NEEDS_PASSWORD = ("a password is required", "a terminal is required")
_SUDO_REFUSED = ("incorrect password attempt", "Sorry, try again", "is not in the sudoers",
                 "is not allowed to execute", "no askpass program")


def remote_command(argv: list[str], sudo: bool, with_password: bool) -> str:
    """The string ssh hands the login shell: the words arrive as given."""
    if not sudo:
        return shlex.join(argv)
    if not with_password:
        return shlex.join(["sudo", "-n", "--", *argv])
    return shlex.join(["sh", "-c", SUDO_ASKPASS, ASKPASS_ARGV0, *argv])


class SshTransport:
    """ssh -F with the site's generated config; sudo for a login user other than root."""

    def __init__(self, conn: Connection, password: str | None = None) -> None:
        """`password`: sudo's, instead of the one the site's model names (a rotation
        verifies a host with the new password before the site's file holds it)."""
        self.conn = conn
        self._password = password
        self._password_read = password is not None
        write(conn)

    def password(self) -> str | None:
        if not self._password_read:
            self._password = become_password(self.conn)
            self._password_read = True
        return self._password

    def ssh_argv(self, host: str, command: list[str] | None = None) -> list[str]:
        """ssh's argv for a host (a login shell without `command`; no sudo: `lab ssh`)."""
        self._known(host)
        argv = ["ssh", "-F", str(self.conn.ssh_config), host]
        return argv + ["--", shlex.join(command)] if command else argv

    def command_argv(self, host: str, argv: list[str]) -> tuple[list[str], str | None]:
        """ssh's argv to run `argv` as root on `host`, and the line stdin must start with."""
        self._known(host)
        sudo = self.conn.needs_sudo(host)
        password = self.password() if sudo else None
        remote = remote_command(argv, sudo, password is not None)
        return ["ssh", "-F", str(self.conn.ssh_config), host, "--", remote], password

    def run(self, host: str, argv: list[str], stdin: str | bytes | None = None, *,
            timeout: float) -> Result:
        command, password = self.command_argv(host, argv)
        binary = isinstance(stdin, bytes)
        if password is not None:
            first = password + "\n"
            stdin = first.encode() + (stdin or b"") if binary else first + (stdin or "")
        try:
            done = subprocess.run(command, input=stdin, capture_output=True, text=not binary,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise HostUnreachable(f"{host}: no answer within {timeout:.0f} s "
                                  f"running {argv[0]}") from exc
        out, err = done.stdout, done.stderr
        if binary:
            out, err = out.decode(errors="replace"), err.decode(errors="replace")
        self._raise_for_ssh(host, done.returncode, err)
        if self.conn.needs_sudo(host) and done.returncode != 0:
            self._raise_for_sudo(host, err, password is not None)
        return Result(done.returncode, out, err)

    def _known(self, host: str) -> None:
        if host not in self.conn.endpoints:
            raise HostUnreachable(f"{host}: not a host of site {self.conn.site}")

    def _raise_for_ssh(self, host: str, rc: int, err: str) -> None:
        if rc != 255 or not _SSH_FAILURE.search(err):
            return
        changed = hostkeys.changed_key_message(self.conn, host, err)
        if changed:
            raise HostKeyChanged(changed)
        last = [line for line in err.strip().splitlines() if not line.startswith("@")]
        raise HostUnreachable(f"{host}: unreachable over SSH via {self.conn.via} "
                              f"({(last or ['?'])[-1]})")

    def _raise_for_sudo(self, host: str, err: str, with_password: bool) -> None:
        user = self.conn.endpoints[host].user
        sudo_lines = [line for line in err.splitlines() if line.startswith("sudo:")
                      or line.startswith("Sorry, try again")]
        said = " ".join(sudo_lines)
        if not with_password and any(s in said for s in _SUDO_NEEDS_PASSWORD):
            raise BecomeRefused(f"{host}: sudo wants a password for {user}; set "
                                "site.connection.become.password (secrets, file or prompt)")
        if any(s in said for s in _SUDO_REFUSED):
            raise BecomeRefused(sudo_refused(self.conn, host, sudo_lines[-1]))


def for_site(site: Site, via: str | None = None) -> SshTransport:
    """The transport of the site's connection: its own SSH, or the lab's (`via: lab`)."""
    return SshTransport(resolve(site, via))
