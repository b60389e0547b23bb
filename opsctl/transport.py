"""How opsctl runs a command on a site's host: the one place that knows about SSH.

When the site has a lab up on this machine, the lab's ssh_config is used (its own key,
pinned known_hosts, ControlMaster). Any other site is reached with plain
`ssh root@ADDRESS` and the operator's own SSH setup (agent, ~/.ssh/config, known_hosts),
in batch mode so that a missing key fails instead of prompting.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from typing import Protocol

from opsctl.errors import OpsctlError
from opsctl.site.model import Site


class HostUnreachable(OpsctlError):
    """SSH could not reach the host (down, refused, no key) or it did not answer in time."""

    exit_code = 1


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
    def run(self, host: str, argv: list[str], stdin: str | bytes | None = None,
            timeout: float = 120) -> Result: ...


class SshTransport:
    """`ssh` with a fixed argument prefix per host; 255 (ssh's own failure) is unreachable."""

    def __init__(self, prefix: dict[str, list[str]], how: str = "") -> None:
        self.prefix = prefix
        self.how = how  # said in unreachable errors, so the operator knows which SSH was used

    def run(self, host: str, argv: list[str], stdin: str | bytes | None = None,
            timeout: float = 120) -> Result:
        if host not in self.prefix:
            raise HostUnreachable(f"{host}: not a host of this site")
        # ssh hands the remote shell one string: quote so the words arrive as given.
        command = [*self.prefix[host], "--", shlex.join(argv)]
        binary = isinstance(stdin, bytes)
        try:
            done = subprocess.run(command, input=stdin, capture_output=True, text=not binary,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise HostUnreachable(f"{host}: no answer within {timeout:.0f} s "
                                  f"running {argv[0]}") from exc
        out, err = done.stdout, done.stderr
        if binary:
            out, err = out.decode(errors="replace"), err.decode(errors="replace")
        if done.returncode == 255:
            raise HostUnreachable(f"{host}: unreachable over SSH{self.how} "
                                  f"({(err.strip().splitlines() or ['?'])[-1]})")
        return Result(done.returncode, out, err)


def for_site(site: Site) -> Transport:
    """The lab's SSH setup when the site has a lab up on this machine, plain SSH otherwise."""
    from opsctl.lab.state import lab_dir  # noqa: PLC0415

    config = lab_dir(site.name) / "ssh_config"
    if config.exists():
        return SshTransport({h: ["ssh", "-F", str(config), h] for h in site.hosts})
    return SshTransport(
        {h: ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
             f"root@{site.hosts[h].address}"] for h in site.hosts},
        how=f" (plain ssh as root: no lab of site {site.name} is up on this machine)")
