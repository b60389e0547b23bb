"""A site's connection: how the control node reaches its hosts, as one OpenSSH config and
Ansible's connection variables.

The model has two producers: the site's own `site.connection` (a real site: login user, port,
key, sudo, a bastion, its pinned known_hosts) and `opsctl lab up`, which writes a model of the
same schema for its containers (`connection.yml` in the lab's directory). Which one a command
uses is explicit: the site's `via`, or `--via lab` on the command line; nothing looks for a
running lab to decide. Everything here is pure but `resolve` (reads the lab's model) and
`write`/`become_password` (files).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from opsctl.errors import InvalidInput, NotFound, OpsctlError, Problem
from opsctl.paths import ensure_own_private_dir, ensure_private_dir, state_dir
from opsctl.site.model import Site
from opsctl.site.schema import BecomeSpec, ConnectionSpec

VIAS = ("ssh", "lab")
LAB_MODEL = "connection.yml"
# A bastion outside the site is named by this alias in the generated config.
EXTERNAL_JUMP = "bastion"


class BecomePasswordMissing(OpsctlError):
    """The site's sudo password is not where site.connection.become says it is."""


@dataclass(frozen=True)
class Endpoint:
    """One machine ssh connects to, under its alias (the host's name)."""

    name: str
    hostname: str  # where ssh connects: the management address, else the service address
    port: int
    user: str
    aliases: tuple[str, ...] = ()  # other names Ansible uses for it (its service address)
    jump: str | None = None  # the alias of the bastion in front of it


@dataclass(frozen=True)
class Connection:
    site: str
    via: str
    user: str
    identity_file: Path
    admin_pubkey: Path
    become: BecomeSpec
    become_file: Path | None  # where the sudo password lives (secrets or file)
    known_hosts: Path
    directory: Path  # where the generated ssh_config lives
    connect_timeout: int
    endpoints: dict[str, Endpoint]
    bastion: Endpoint | None = None  # a bastion outside the site

    @property
    def ssh_config(self) -> Path:
        return self.directory / "ssh_config"

    @property
    def control_dir(self) -> Path:
        return control_dir(self.directory)

    @property
    def sudo(self) -> bool:
        """Whether commands go through sudo: every login user but root."""
        return any(e.user != "root" for e in self.endpoints.values())

    def needs_sudo(self, host: str) -> bool:
        return self.endpoints[host].user != "root"

    def jump_order(self) -> list[str]:
        """Aliases in the order their keys must be trusted: bastions before what is behind."""
        first = {e.jump for e in self.endpoints.values() if e.jump}
        names = [EXTERNAL_JUMP] if self.bastion else []
        names += [n for n in self.endpoints if n in first]
        return names + [n for n in self.endpoints if n not in first]


# ssh's control socket is DIR/cm-<%C: 40 hex>, and while binding it ssh adds a 17-character
# suffix; a unix socket's whole path must fit 107 bytes (sun_path less its NUL).
_CONTROL_SOCKET = "cm-%C"
_CONTROL_SOCKET_LEN = len("/cm-") + 40 + 17
_SOCKET_PATH_MAX = 107


def control_dir(directory: Path) -> Path:
    """Where a site's ssh control sockets live: beside its ssh_config when the socket's path
    fits, else (a state directory under a deep path) a private directory of this user under
    the system's temp dir, one per site directory."""
    if len(os.fsencode(directory)) + _CONTROL_SOCKET_LEN <= _SOCKET_PATH_MAX:
        return directory
    digest = hashlib.sha256(os.fsencode(directory)).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"opsctl-{os.getuid()}" / digest


def site_conn_dir(site_name: str) -> Path:
    """Where a site reached over its own SSH keeps its generated config and pinned keys."""
    return state_dir() / "sites" / site_name


def lab_model_path(site_name: str) -> Path:
    from opsctl.lab.state import lab_dir  # noqa: PLC0415 - the lab is one producer

    return lab_dir(site_name) / LAB_MODEL


def write_lab_model(site_name: str, spec: ConnectionSpec) -> Path:
    """What `opsctl lab up` writes: the lab's hosts as a connection of the common schema."""
    path = lab_model_path(site_name)
    data = spec.model_dump(mode="json", exclude_none=True)
    path.write_text("# written by opsctl lab up: how the lab's hosts are reached\n"
                    + yaml.safe_dump({"connection": data}, sort_keys=False))
    return path


def _lab_spec(site: Site) -> ConnectionSpec:
    path = lab_model_path(site.name)
    if not path.exists():
        raise NotFound(f"site {site.name} is reached via lab, but no lab of it is up on this "
                       f"machine (opsctl lab up --site {site.name})")
    try:
        return ConnectionSpec.model_validate(yaml.safe_load(path.read_text())["connection"])
    except (ValidationError, KeyError, TypeError) as exc:
        raise InvalidInput([Problem(str(path), "connection", f"not a connection model: {exc}")
                            ]) from None


def _path(value: str, base: Path) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else base / path


def resolve(site: Site, via: str | None = None) -> Connection:
    """The connection a command uses: the site's own, or the lab's when the site says
    `via: lab` or the command was given `--via lab`."""
    via = via or site.spec.connection.via
    if via not in VIAS:
        raise InvalidInput([Problem("--via", via, f"must be one of {', '.join(VIAS)}")])
    if via == "lab":
        from opsctl.lab.state import lab_dir  # noqa: PLC0415

        return build(site, _lab_spec(site), lab_dir(site.name), via="lab", per_host=False)
    return build(site, site.spec.connection, site_conn_dir(site.name), via="ssh")


def build(site: Site, spec: ConnectionSpec, directory: Path, via: str,
          per_host: bool = True) -> Connection:
    """Pure: the model and the inventory's per-host settings (unless the lab made the model:
    its containers answer on their service addresses) turned into endpoints."""
    jump_alias = None
    bastion = None
    if spec.jump is not None:
        if spec.jump.host is not None:
            jump_alias = spec.jump.host
        else:
            jump_alias = EXTERNAL_JUMP
            bastion = Endpoint(EXTERNAL_JUMP, str(spec.jump.address), spec.jump.port or 22,
                               spec.jump.user or spec.user)
    endpoints = {}
    for host in site.hosts.values():
        login = host.login if per_host else type(host.login)()
        endpoints[host.name] = Endpoint(
            name=host.name, hostname=login.address or str(host.address),
            port=login.port or spec.port, user=login.user or spec.user,
            aliases=(str(host.address),),
            jump=None if host.name == jump_alias else jump_alias)
    if spec.jump is not None and spec.jump.host is not None and jump_alias in endpoints:
        e = endpoints[jump_alias]
        endpoints[jump_alias] = Endpoint(e.name, e.hostname, spec.jump.port or e.port,
                                         spec.jump.user or e.user, e.aliases)
    become_file = None
    if spec.become.password == "secrets":
        from opsctl.secrets import secrets_dir  # noqa: PLC0415

        become_file = secrets_dir(site.name) / f"{spec.user}-password"
    elif spec.become.password == "file":
        become_file = _path(str(spec.become.file), site.directory)
    identity = _path(spec.identity_file, site.directory)
    return Connection(
        site=site.name, via=via, user=spec.user, identity_file=identity,
        admin_pubkey=_path(spec.admin_pubkey, site.directory) if spec.admin_pubkey
        else identity.with_name(identity.name + ".pub"),
        become=spec.become, become_file=become_file,
        known_hosts=_path(spec.known_hosts, site.directory) if spec.known_hosts
        else directory / "known_hosts",
        directory=directory, connect_timeout=spec.connect_timeout,
        endpoints=endpoints, bastion=bastion)


def render_ssh_config(conn: Connection) -> str:
    """One OpenSSH config for the whole site: `ssh -F FILE HOST` reaches HOST as opsctl does.

    HostKeyAlias pins each key under the host's name, whatever address or port it is reached
    on; service addresses are patterns too, so Ansible (which connects to ansible_host) and
    ProxyJump's nested ssh (which inherits -F) meet the same settings.
    """
    lines = [f"# written by opsctl for site {conn.site} (via {conn.via}); "
             f"use: ssh -F {conn.ssh_config} HOST", ""]
    everyone = ([conn.bastion] if conn.bastion else []) + list(conn.endpoints.values())
    for e in everyone:
        lines += [f"Host {' '.join((e.name, *e.aliases))}",
                  f"  HostName {e.hostname}",
                  f"  Port {e.port}",
                  f"  User {e.user}",
                  f"  HostKeyAlias {e.name}"]
        if e.jump:
            lines.append(f"  ProxyJump {e.jump}")
        lines.append("")
    lines += [
        "Host *",
        f"  IdentityFile {conn.identity_file}",
        "  IdentitiesOnly yes",
        f"  UserKnownHostsFile {conn.known_hosts}",
        "  GlobalKnownHostsFile /dev/null",
        "  StrictHostKeyChecking yes",
        "  CheckHostIP no",
        "  UpdateHostKeys no",
        "  BatchMode yes",
        f"  ConnectTimeout {conn.connect_timeout}",
        "  ServerAliveInterval 15",
        "  ControlMaster auto",
        f"  ControlPath {conn.control_dir}/{_CONTROL_SOCKET}",
        "  ControlPersist 60s",
        "  LogLevel ERROR",
    ]
    return "\n".join(lines) + "\n"


def ansible_vars(conn: Connection, password_file: Path | None = None) -> dict[str, Any]:
    """Ansible's connection variables: the same ssh_config (-F), host key checking left on
    (apply sets ANSIBLE_HOST_KEY_CHECKING=True), sudo when the login user is not root.

    The sudo password is never a value here: a file lookup reads it from its root-only file
    when a task needs it, so it reaches neither the runner's artifacts nor the audit log.
    """
    out: dict[str, Any] = {"ansible_ssh_common_args": f"-F {conn.ssh_config}"}
    if conn.sudo:
        out |= {"ansible_become": True, "ansible_become_method": "sudo"}
        if password_file is not None:
            out["ansible_become_password"] = (
                f"{{{{ lookup('ansible.builtin.file', '{password_file}') }}}}")
    return out


def write(conn: Connection) -> Path:
    """Write the site's ssh_config (0600) and return its path; the known_hosts file is
    made empty when missing (opsctl site trust fills it)."""
    ensure_private_dir(conn.directory)
    if conn.control_dir != conn.directory:
        ensure_own_private_dir(conn.control_dir)
    conn.known_hosts.parent.mkdir(parents=True, exist_ok=True)
    if not conn.known_hosts.exists():
        conn.known_hosts.touch(mode=0o600)
    text = render_ssh_config(conn)
    if conn.ssh_config.exists() and conn.ssh_config.read_text() == text:
        return conn.ssh_config  # as it is: ssh processes reading it never see a rewrite
    # A temporary name of this writer's own: commands (and threads) write concurrently.
    tmp = conn.ssh_config.with_name(f".ssh_config.{os.getpid()}.{threading.get_ident()}")
    tmp.touch(mode=0o600)
    tmp.write_text(text)
    tmp.replace(conn.ssh_config)
    return conn.ssh_config


# Set once by the CLI: asks the operator for the sudo password (`become.password: prompt`).
Prompt = Callable[[str], str]
_prompt: Prompt | None = None
_prompted: dict[str, str] = {}


def set_prompt(prompt: Prompt | None) -> None:
    global _prompt
    _prompt = prompt


# How Ansible (its become plugin, and Mitogen) says sudo took the wrong password or none.
_ANSIBLE_SUDO_REFUSED = ("sudo password is incorrect", "Incorrect sudo password",
                         "Missing sudo password", "incorrect password attempt")


def sudo_refused(conn: Connection, host: str, said: str) -> str:
    """The one line for a host whose sudo refused the connection's password, naming the user
    and where the password came from (the same from opsctl's transport and from Ansible)."""
    where = conn.become_file or "the prompt"
    user = conn.endpoints[host].user
    return f"{host}: sudo refused {user} ({said}); check the password at {where}"


def ansible_sudo_refused(conn: Connection, host: str, message: str) -> str | None:
    """sudo_refused's line when an Ansible task failed because sudo refused, else None."""
    if host not in conn.endpoints or not any(s in message for s in _ANSIBLE_SUDO_REFUSED):
        return None
    return sudo_refused(conn, host, message.split(": ")[-1])


def become_password(conn: Connection) -> str | None:
    """The sudo password the site's model names (None with NOPASSWD sudo or a root login)."""
    if not conn.sudo or conn.become.password == "none":
        return None
    if conn.become.password == "prompt":
        if conn.site not in _prompted:
            if _prompt is None:
                raise BecomePasswordMissing(
                    f"site {conn.site}: become.password is prompt, but nobody is there to "
                    "ask (run from a terminal, or keep it in the site's secrets)")
            _prompted[conn.site] = _prompt(f"sudo password for {conn.user} on {conn.site}")
        return _prompted[conn.site]
    assert conn.become_file is not None
    try:
        text = conn.become_file.read_text()
    except OSError as exc:
        raise BecomePasswordMissing(
            f"site {conn.site}: no sudo password for {conn.user} at {conn.become_file} "
            f"({exc.strerror}); write it there (mode 0600)") from None
    from opsctl.secrets import password_in  # noqa: PLC0415

    return password_in(text)


def site_ssh_config(site: Site, via: str | None = None) -> str:
    """`opsctl site ssh-config`: the config, written where `ssh -F` will find it."""
    conn = resolve(site, via)
    write(conn)
    return render_ssh_config(conn)
