"""The lab's SSH identity and its connection model (opsctl.connection makes the ssh_config)."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from opsctl import connection, hostkeys
from opsctl.connection import resolve, write_lab_model
from opsctl.lab.sh import run
from opsctl.site.model import Site
from opsctl.site.schema import ConnectionSpec
from opsctl.transport import HostError, SshTransport, for_site


def key_path(lab: Path) -> Path:
    return lab / "ssh" / "id_ed25519"


def ensure_key(lab: Path) -> str:
    key = key_path(lab)
    if not key.exists():
        key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"opsctl-lab-{lab.name}",
             "-f", str(key)])
    return key.with_suffix(".pub").read_text()


def connection_spec(lab: Path) -> ConnectionSpec:
    """The lab's hosts as a connection of the common schema: root with the lab's own key,
    on port 22 of each service address, keys pinned in the lab's own known_hosts."""
    return ConnectionSpec(via="ssh", user="root", port=22, identity_file=str(key_path(lab)),
                          known_hosts=str(lab / "ssh" / "known_hosts"), connect_timeout=15)


def write_client_files(site: Site, lab: Path, host_keys: dict[str, str]) -> None:
    """Write the lab's connection model, pin each host's key (made at lab up) through the
    same mechanism a real site uses, and generate the ssh_config from the model."""
    write_lab_model(site.name, connection_spec(lab))
    conn = resolve(site, via="lab")
    hostkeys.pin(conn, [hostkeys.HostKey(name, *line.split()[:2])
                        for name, line in host_keys.items()])
    connection.write(conn)


def transport(site: Site) -> SshTransport:
    """The lab's hosts through opsctl's one transport, over the lab's connection model."""
    return for_site(site, via="lab")


def port_open(address: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_ssh(site: Site, names: list[str], addresses: dict[str, str],
                 timeout: float = 90) -> list[str]:
    """Wait until each host answers a command over SSH; return those that never did."""
    hosts = transport(site)

    def one(name: str) -> str | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if port_open(addresses[name], 22):
                try:
                    if hosts.run(name, ["true"], timeout=30).rc == 0:
                        return None
                except HostError:
                    pass  # sshd is up before the host lets logins in: ask again
            time.sleep(0.3)
        return name

    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        return [n for n in pool.map(one, names) if n]


def remote(site: Site, host: str, command: list[str], timeout: float = 15) -> tuple[int, str]:
    """Run a command on a lab host as root: (exit code, what it printed). A host that cannot
    be asked raises the transport's HostError (unreachable, a changed key)."""
    done = transport(site).run(host, command, timeout=timeout)
    return done.rc, (done.stdout or done.stderr).strip()
