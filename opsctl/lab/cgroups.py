"""A cgroup tree of its own for each lab container.

nspawn started with `--keep-unit --register=no` (the lab's way: this machine's init is not
systemd) makes the container's cgroups under its own: every container booted from the same
cgroup gets the same tree, `/payload/system.slice/...`. Their systemds then share each unit's
cgroup: the same service started on two hosts at once (an apply does exactly that) races on
creating and removing the one directory, and a start fails with 219/CGROUP ("Failed to attach
to cgroup ...: No such file or directory"), or a stop finds the other host's processes in its
unit and the unit hangs. So each host's keeper moves itself, before nspawn starts, into
`opsctl-lab/<machine>` of the hierarchies nspawn uses (systemd's named one and the unified
one), and `lab down` removes those trees once their processes are gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

CGROUP_FS = Path("/sys/fs/cgroup")
TREE = "opsctl-lab"


def hierarchies(self_cgroup: str, fs: Path = CGROUP_FS) -> list[Path]:
    """The mounts of the hierarchies nspawn puts a container in, from /proc/self/cgroup."""
    found = []
    for line in self_cgroup.splitlines():
        number, controllers, _path = line.split(":", 2)
        if controllers == "name=systemd" and (fs / "systemd" / "cgroup.procs").exists():
            found.append(fs / "systemd")
        elif number == "0" and controllers == "":
            for mount in (fs / "unified", fs):  # hybrid, then pure cgroup v2
                if (mount / "cgroup.procs").exists():
                    found.append(mount)
                    break
    return found


def container_dirs(machine: str, fs: Path = CGROUP_FS, self_cgroup: str | None = None
                   ) -> list[Path]:
    if self_cgroup is None:
        self_cgroup = Path("/proc/self/cgroup").read_text()
    return [mount / TREE / machine for mount in hierarchies(self_cgroup, fs)]


def enter(machine: str, fs: Path = CGROUP_FS) -> list[Path]:
    """Move this process into the machine's own cgroups; the directories made."""
    made = container_dirs(machine, fs)
    for directory in made:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "cgroup.procs").write_text(f"{os.getpid()}\n")
    return made


def kill(machine: str, fs: Path = CGROUP_FS, self_cgroup: str | None = None) -> list[int]:
    """SIGKILL, by PID, whatever is still in the machine's cgroups: its container's processes.
    When nspawn does not power the container off in time it is killed, and the container's
    processes live on without it; before each host had its own tree nothing found them."""
    pids: set[int] = set()
    for directory in container_dirs(machine, fs, self_cgroup):
        for parent, _dirs, _files in os.walk(directory):
            with contextlib.suppress(OSError, ValueError):
                pids |= {int(p) for p in Path(parent, "cgroup.procs").read_text().split()}
    pids.discard(os.getpid())
    for pid in sorted(pids):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return sorted(pids)


def remove(machine: str, fs: Path = CGROUP_FS, self_cgroup: str | None = None,
           grace: float = 30.0) -> None:
    """Kill what is left in the machine's cgroups and remove them, deepest first; one still
    holding a process after `grace` seconds stays (and `leftovers` names it)."""
    trees = [d for d in container_dirs(machine, fs, self_cgroup) if d.is_dir()]
    # Killed processes leave their cgroups when they have exited, a moment later on a busy
    # machine (seconds): kill and remove again until the trees are gone.
    deadline = time.monotonic() + grace
    while trees:
        kill(machine, fs, self_cgroup)
        for tree in trees:
            for parent, _dirs, _files in sorted(os.walk(tree), key=lambda w: -len(w[0])):
                with contextlib.suppress(OSError):
                    os.rmdir(parent)
        trees = [tree for tree in trees if tree.is_dir()]
        if not trees or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    for directory in container_dirs(machine, fs, self_cgroup):
        with contextlib.suppress(OSError):
            os.rmdir(directory.parent)  # opsctl-lab itself, once no lab host is left
