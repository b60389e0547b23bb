"""What an apply needs to reach the site: Ansible's connection inventory from the site's
connection, the sudo password for the run, and a host-key preflight.

The preflight is one `ssh true` per host, in parallel: a host whose key changed stops the
run before Ansible touches anything, with one line per such host naming both fingerprints.
The sudo password, when there is one, sits in a mode-0600 file in the site's private
connection directory for the run only; the inventory names the file, never the value.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from opsctl import hostkeys
from opsctl.connection import Connection, ansible_vars, become_password
from opsctl.site.model import Site
from opsctl.transport import HostKeyChanged, SshTransport, for_site

PREFLIGHT_TIMEOUT = 30


@dataclass(frozen=True)
class ReachedSite:
    conn: Connection
    inventory: Path  # an extra inventory source after the site's own
    extravars: dict[str, Any]


class KeysChanged(HostKeyChanged):
    def __init__(self, messages: list[str]) -> None:
        self.messages = messages
        super().__init__("; ".join(messages))

    def lines(self) -> list[str]:
        return self.messages


def limited_hosts(site: Site, limit: tuple[str, ...]) -> list[str]:
    if not limit:
        return list(site.hosts)
    chosen = {h.name for name in limit if not name.startswith("!")
              for h in site.hosts_in(name.lstrip("&"))}
    chosen |= {name for name in limit if name in site.hosts}
    return [h for h in site.hosts if h in chosen]


def preflight(transport: SshTransport, hosts: list[str]) -> None:
    """Refuse the run when any host offers a key other than its pinned one."""
    def one(host: str) -> str | None:
        # A fresh connection, not a control master's: a master opened before a key changed
        # would answer without the key being checked again.
        argv = transport.ssh_argv(host, ["true"])
        argv[3:3] = ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
        try:
            done = subprocess.run(argv, capture_output=True,
                                  text=True, timeout=PREFLIGHT_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            return None  # Ansible reports it unreachable
        if done.returncode != 255:
            return None
        return hostkeys.changed_key_message(transport.conn, host, done.stderr)

    with ThreadPoolExecutor(max_workers=max(1, min(16, len(hosts)))) as pool:
        changed = [m for m in pool.map(one, hosts) if m]
    if changed:
        raise KeysChanged(changed)


@contextmanager
def reach(site: Site, via: str | None, limit: tuple[str, ...]) -> Iterator[ReachedSite]:
    transport = for_site(site, via)
    conn = transport.conn
    preflight(transport, limited_hosts(site, limit))
    password = become_password(conn)
    password_file = None
    if password is not None:
        password_file = conn.directory / f"become-{os.getpid()}"
        password_file.touch(mode=0o600)
        password_file.write_text(password)
    inventory = conn.directory / "ansible-connection.yml"
    inventory.write_text("# written by opsctl apply from the site's connection\n" +
                         yaml.safe_dump({"all": {"vars": ansible_vars(conn, password_file)}},
                                        sort_keys=False))
    extravars = {
        # The key the base role authorises for the admin account, from the connection.
        "opsctl_admin_pubkey": str(conn.admin_pubkey),
        "opsctl_login_user": conn.user,
        # sudo without a password is how the login user administers: hardening keeps it.
        "opsctl_become_nopasswd": conn.user != "root" and conn.become.password == "none",
    }
    if conn.user != "root" and password_file is not None:
        # The admin's sudo password is the site's: hardening keeps it instead of a new one.
        extravars["opsctl_admin_password_file"] = str(conn.become_file or password_file)
    try:
        yield ReachedSite(conn, inventory, extravars)
    finally:
        if password_file is not None:
            password_file.unlink(missing_ok=True)
