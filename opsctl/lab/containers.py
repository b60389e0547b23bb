"""Lab hosts as systemd-nspawn containers booted on an overlay of the base image."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from opsctl.errors import LabError
from opsctl.lab import cgroups, keeper
from opsctl.lab.plan import NodePlan
from opsctl.lab.sh import run

PROPAGATE_DIR = Path("/run/systemd/nspawn/propagate")
# What a host may do beyond nspawn's default set: its own nftables firewall.
CAPABILITIES = "CAP_NET_ADMIN"


def is_mounted(path: Path) -> bool:
    target = str(path.resolve()) if path.exists() else str(path)
    with open("/proc/self/mounts") as mounts:
        return any(line.split()[1] == target for line in mounts)


def mount_overlay(image: Path, host_dir: Path) -> Path:
    merged = host_dir / "merged"
    for sub in ("upper", "work", "merged"):
        (host_dir / sub).mkdir(parents=True, exist_ok=True)
    if not is_mounted(merged):
        run(["mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir={image},upperdir={host_dir / 'upper'},workdir={host_dir / 'work'}",
             str(merged)])
    return merged


def unmount(path: Path) -> bool:
    if path.exists() and is_mounted(path):
        run(["umount", str(path)])
        return True
    return False


@dataclass(frozen=True)
class Admin:
    """The account a province's bare server is delivered with: key login, sudo with a
    password (root has no key: the lab, like a province, never logs in as root)."""

    user: str
    password_hash: str
    pubkey: str
    ssh_port: int = 22


def prepare_root(merged: Path, node: NodePlan, hosts_file: str, admin: Admin) -> str:
    """Write what makes the image this host; return its SSH host public key line."""
    marker = merged / "etc" / "opsctl-lab-host"
    (merged / "etc" / "hosts").write_text(hosts_file)
    if not marker.exists():
        (merged / "etc" / "hostname").write_text(f"{node.name}\n")
        (merged / "etc" / "machine-id").write_text(uuid.uuid4().hex + "\n")
        run(["ssh-keygen", "-A", "-f", str(merged)])
        if admin.ssh_port != 22:  # the port the site's sshd was set up on
            (merged / "etc" / "ssh" / "sshd_config.d" / "port.conf").write_text(
                f"Port {admin.ssh_port}\n")
        # useradd --root runs in the host's root: its login.defs, skel and sudo group
        run(["useradd", "--root", str(merged), "--create-home", "--shell", "/bin/bash",
             "--groups", "sudo", "--password", admin.password_hash, admin.user])
        marker.write_text(f"{node.machine}\n")
    uid, gid = _ids(merged, admin.user)
    ssh_dir = merged / "home" / admin.user / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    keys = ssh_dir / "authorized_keys"
    keys.write_text(admin.pubkey)
    keys.chmod(0o600)
    for path in (ssh_dir, keys):
        os.chown(path, uid, gid)
    return (merged / "etc" / "ssh" / "ssh_host_ed25519_key.pub").read_text().strip()


def _ids(root: Path, user: str) -> tuple[int, int]:
    for line in (root / "etc" / "passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3])
    raise LabError(f"{root}: no account {user} after useradd")


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_container_process(pid: int | None, machine: str) -> bool:
    """The PID is our nspawn for this machine (PIDs are reused: never trust a number alone)."""
    if not pid:
        return False
    cmd = _cmdline(pid)
    return bool(cmd) and "systemd-nspawn" in cmd[0] and f"--machine={machine}" in cmd


def find_container_pids(machines: dict[str, str]) -> dict[str, int]:
    """Our nspawn processes by their unique --machine= argument: a boot whose PID an
    interrupted `lab up` never got to record is still found and stopped by its PID."""
    found: dict[str, int] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            for name, machine in machines.items():
                if is_container_process(int(proc.name), machine):
                    found.setdefault(name, int(proc.name))
    return found


def boot(merged: Path, node: NodePlan, lab: Path) -> int:
    """Boot the host's container under its keeper; the PID of its systemd-nspawn."""
    if shutil.which("systemd-nspawn") is None:
        raise LabError("systemd-nspawn is not installed (apt-get install systemd-container)")
    # nspawn keeps state under /run/systemd even when the machine's init is not systemd.
    Path("/run/systemd").mkdir(exist_ok=True)
    cmd = ["systemd-nspawn", f"--machine={node.machine}", "-D", str(merged), "--boot",
           f"--network-namespace-path=/run/netns/{node.netns}", "--register=no",
           "--keep-unit", f"--capability={CAPABILITIES}", "--console=read-only",
           # The host's /etc/localtime and resolv.conf are the roles' to manage: by default
           # nspawn rewrites them at every boot, so a rebooted host drifted from its converge.
           "--timezone=off", "--resolv-conf=off"]
    # nspawn runs under the host's keeper, which boots it again after a reboot (exit 133)
    log = lab / "hosts" / node.name / "console.log"
    pid_path = keeper.pid_file(lab, node.name)
    pid_path.unlink(missing_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "opsctl.lab.keeper", str(lab), node.name, "--", *cmd],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    deadline = time.monotonic() + 10
    while not pid_path.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    pid = int(pid_path.read_text()) if pid_path.exists() else 0
    if proc.poll() is not None or not is_container_process(pid, node.machine):
        raise LabError(f"{node.name}: systemd-nspawn exited at once ({proc.poll()}); "
                       f"see {log}")
    return pid


def stop(pids: dict[str, int], machines: dict[str, str], timeout: float = 20) -> list[str]:
    """Power the containers off (SIGTERM asks nspawn to shut the container down), then kill."""
    live = {name: pid for name, pid in pids.items()
            if is_container_process(pid, machines[name])}
    for pid in live.values():
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in live.values()):
        time.sleep(0.1)
    for pid in live.values():
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    for pid in live.values():
        _reap(pid)
    for machine in machines.values():
        shutil.rmtree(PROPAGATE_DIR / machine, ignore_errors=True)
        cgroups.remove(machine)
    return sorted(live)


def _alive(pid: int) -> bool:
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


# What one booted container holds: systemd, journald, logind and friends (measured ~9).
INOTIFY_PER_CONTAINER = 12


def inotify_instances_in_use(uid: int = 0) -> int:
    """inotify instances held by processes of `uid` (the limit is per user, machine-wide)."""
    count = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if proc.stat().st_uid != uid:
                continue
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) == "anon_inode:inotify":
                    count += 1
        except OSError:
            continue
    return count


def check_inotify_headroom(new_containers: int) -> None:
    """Refuse to boot containers that would die of "Too many open files" half-way."""
    if new_containers == 0:
        return
    limit = int(Path("/proc/sys/fs/inotify/max_user_instances").read_text())
    need = inotify_instances_in_use() + new_containers * INOTIFY_PER_CONTAINER
    if need > limit:
        raise LabError(f"fs.inotify.max_user_instances is {limit}, and {new_containers} more "
                       f"containers need about {need}: run ./setup (it raises the limit) or "
                       f"`sysctl -w fs.inotify.max_user_instances=1024`")
