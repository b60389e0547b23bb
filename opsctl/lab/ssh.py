"""The lab's SSH identity and its connection model (opsctl.connection makes the ssh_config)."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from opsctl import connection, hostkeys
from opsctl.connection import resolve, write_lab_model
from opsctl.lab.containers import Admin
from opsctl.lab.sh import run
from opsctl.secrets import ensure_secret, sha512_crypt
from opsctl.site.model import Site
from opsctl.site.schema import BecomeSpec, ConnectionSpec
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


# The lab's hosts are delivered as a province's are: an admin account with the lab's key and
# sudo with a password, root without any login. opsctl converges them as this user, the way
# it converges a real site (its sudo password: the site's secrets, USER-password).
ADMIN = "ops"


def connection_spec(site: Site, lab: Path) -> ConnectionSpec:
    """The lab's hosts as a connection of the common schema: the admin with the lab's own key
    and its sudo password from the site's secrets, on the site's SSH port of each service
    address, keys pinned in the lab's own known_hosts."""
    return ConnectionSpec(via="ssh", user=ADMIN, port=site.spec.connection.port,
                          identity_file=str(key_path(lab)),
                          become=BecomeSpec(password="secrets"),
                          known_hosts=str(lab / "ssh" / "known_hosts"), connect_timeout=15)


def admin(site: Site, lab: Path) -> Admin:
    """The admin account each lab host is made with; its password is made once per site
    (the file the hardening role keeps it in)."""
    password = ensure_secret(site.name, f"{ADMIN}-password", length=24)
    return Admin(ADMIN, sha512_crypt(password), ensure_key(lab), site.spec.connection.port)


def write_client_files(site: Site, lab: Path, host_keys: dict[str, str]) -> None:
    """Write the lab's connection model, pin each host's key (made at lab up) through the
    same mechanism a real site uses, and generate the ssh_config from the model."""
    write_lab_model(site.name, connection_spec(site, lab))
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
            if port_open(addresses[name], hosts.conn.endpoints[name].port):
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
    """Run a command on a lab host as root (the admin's sudo): (exit code, what it printed).
    A host that cannot be asked raises the transport's HostError (unreachable, a changed key)."""
    done = transport(site).run(host, command, timeout=timeout)
    return done.rc, (done.stdout or done.stderr).strip()
