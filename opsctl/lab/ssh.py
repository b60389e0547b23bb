"""The lab's SSH identity, known_hosts, ssh_config and the connection inventory for apply."""

from __future__ import annotations

import shlex
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from opsctl.lab.plan import LabPlan
from opsctl.lab.sh import run


def key_path(lab: Path) -> Path:
    return lab / "ssh" / "id_ed25519"


def ensure_key(lab: Path) -> str:
    key = key_path(lab)
    if not key.exists():
        key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"opsctl-lab-{lab.name}",
             "-f", str(key)])
    return key.with_suffix(".pub").read_text()


def write_client_files(lab: Path, plan: LabPlan, host_keys: dict[str, str]) -> None:
    """known_hosts pins each host's key (made at lab up), so checking stays strict."""
    known = lab / "ssh" / "known_hosts"
    lines = []
    for node in plan.hosts():
        if node.name in host_keys:
            address = node.address.split("/")[0]
            lines.append(f"{node.name},{address} {host_keys[node.name]}")
    known.write_text("\n".join(lines) + "\n")
    config = [
        f"# written by opsctl lab up for lab {plan.site}",
    ]
    for node in plan.hosts():
        config += [
            f"Host {node.name}",
            f"  HostName {node.address.split('/')[0]}",
        ]
    config += [
        "Host *",
        "  User root",
        f"  IdentityFile {key_path(lab)}",
        "  IdentitiesOnly yes",
        f"  UserKnownHostsFile {known}",
        "  StrictHostKeyChecking yes",
        "  ConnectTimeout 15",
        "  ControlMaster auto",
        f"  ControlPath {lab}/ssh/cm-%C",
        "  ControlPersist 60s",
        "  LogLevel ERROR",
    ]
    (lab / "ssh_config").write_text("\n".join(config) + "\n")
    connection = {"all": {"vars": {
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(key_path(lab)),
        "ansible_ssh_common_args": f"-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes",
        "opsctl_ssh_pubkey": str(key_path(lab).with_suffix(".pub")),
    }}}
    (lab / "connection.yml").write_text(
        "# written by opsctl lab up: how apply reaches this lab's hosts\n"
        + yaml.safe_dump(connection, sort_keys=False))


def ssh_argv(lab: Path, host: str, command: list[str] | None = None) -> list[str]:
    argv = ["ssh", "-F", str(lab / "ssh_config"), host]
    if command:
        # ssh hands the remote shell one string: quote so the words arrive as given.
        argv += ["--", shlex.join(command)]
    return argv


def port_open(address: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_ssh(lab: Path, names: list[str], addresses: dict[str, str],
                 timeout: float = 90) -> list[str]:
    """Wait until each host answers a command over SSH; return those that never did."""
    def one(name: str) -> str | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if port_open(addresses[name], 22):
                result = subprocess.run(ssh_argv(lab, name, ["true"]), capture_output=True,
                                        timeout=30, check=False)
                if result.returncode == 0:
                    return None
            time.sleep(0.3)
        return name

    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        return [n for n in pool.map(one, names) if n]


def remote(lab: Path, host: str, command: list[str], timeout: float = 15) -> tuple[int, str]:
    try:
        result = subprocess.run(ssh_argv(lab, host, command), capture_output=True, text=True,
                                timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return 124, "timed out"
    return result.returncode, (result.stdout or result.stderr).strip()
