"""How opsctl runs a command on a site's host: the one place that knows about SSH.

In the lab the lab's ssh_config (key, pinned known_hosts, ControlMaster) is used; for any
other site plain `ssh root@ADDRESS` with the operator's own SSH setup.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import Protocol

from opsctl.errors import OpsctlError
from opsctl.site.model import Site


class HostUnreachable(OpsctlError):
    """SSH could not reach the host (it is down or the network refuses it)."""

    exit_code = 1


@dataclass(frozen=True)
class Result:
    rc: int
    stdout: str
    stderr: str

    @property
    def message(self) -> str:
        """The last line of what the command said, for a one-line error."""
        lines = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return lines[-1] if lines else f"exit {self.rc}"


class Transport(Protocol):
    def run(self, host: str, argv: list[str], stdin: str | None = None,
            timeout: float = 120) -> Result: ...


class SshTransport:
    """`ssh` with a fixed argument prefix per host; 255 (ssh's own failure) is unreachable."""

    def __init__(self, prefix: dict[str, list[str]]) -> None:
        self.prefix = prefix

    def run(self, host: str, argv: list[str], stdin: str | None = None,
            timeout: float = 120) -> Result:
        import shlex  # noqa: PLC0415

        command = [*self.prefix[host], "--", shlex.join(argv)]
        try:
            done = subprocess.run(command, input=stdin, capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise HostUnreachable(f"{host}: no answer within {timeout:.0f} s "
                                  f"running {argv[0]}") from exc
        if done.returncode == 255:
            raise HostUnreachable(f"{host}: unreachable over SSH "
                                  f"({(done.stderr.strip().splitlines() or ['?'])[-1]})")
        return Result(done.returncode, done.stdout, done.stderr)


def for_site(site: Site) -> Transport:
    """The lab's SSH setup when the site has a lab on this machine, plain SSH otherwise."""
    from opsctl.lab.state import lab_dir  # noqa: PLC0415

    lab = lab_dir(site.name)
    config = lab / "ssh_config"
    if config.exists():
        return SshTransport({h: ["ssh", "-F", str(config), h] for h in site.hosts})
    return SshTransport({h: ["ssh", "-o", "BatchMode=yes", f"root@{site.hosts[h].address}"]
                         for h in site.hosts})
