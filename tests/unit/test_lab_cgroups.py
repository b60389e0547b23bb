"""Each lab container gets cgroups of its own (opsctl.lab.cgroups): found in the hierarchies
nspawn uses on a hybrid (this machine kind) and a pure cgroup v2 machine, and removed deepest
first, leaving one that still holds a process."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

from opsctl.lab import cgroups

HYBRID = """9:name=systemd:/
8:pids:/
4:memory:/process_api/1b166400
1:cpu:/
0::/
"""
V2 = "0::/user.slice/session-1.scope\n"


def _fs(tmp_path: Path, *mounts: str) -> Path:
    for mount in mounts:
        (tmp_path / mount).mkdir(parents=True, exist_ok=True)
        (tmp_path / mount / "cgroup.procs").write_text("")
    return tmp_path


def test_the_hierarchies_nspawn_uses_on_hybrid_and_on_v2(tmp_path: Path) -> None:
    hybrid = _fs(tmp_path / "hybrid", "systemd", "unified", "memory")
    assert cgroups.hierarchies(HYBRID, hybrid) == [hybrid / "systemd", hybrid / "unified"]
    v2 = _fs(tmp_path / "v2", ".")
    assert cgroups.hierarchies(V2, v2) == [v2]
    assert cgroups.container_dirs("lab-db1", hybrid, HYBRID) == [
        hybrid / "systemd" / "opsctl-lab" / "lab-db1",
        hybrid / "unified" / "opsctl-lab" / "lab-db1"]


def test_two_machines_never_share_a_tree(tmp_path: Path) -> None:
    fs = _fs(tmp_path, "systemd", "unified")
    one = cgroups.container_dirs("ref-db1", fs, HYBRID)
    two = cgroups.container_dirs("ref-db2", fs, HYBRID)
    assert not set(one) & set(two)


def test_removal_goes_deepest_first_and_keeps_what_is_busy(tmp_path: Path) -> None:
    fs = _fs(tmp_path, "systemd")
    tree = fs / "systemd" / "opsctl-lab" / "ref-db1"
    (tree / "payload" / "system.slice" / "nftables.service").mkdir(parents=True)
    (tree / "supervisor").mkdir()
    (fs / "systemd" / "opsctl-lab" / "ref-db2" / "payload").mkdir(parents=True)
    busy = tree / "payload" / "init.scope"
    busy.mkdir()
    (busy / "held").write_text("")  # a plain directory with a file cannot be removed: busy

    cgroups.remove("ref-db1", fs, HYBRID, grace=0.2)
    assert sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_dir()) == [
        "payload", "payload/init.scope"]
    assert (fs / "systemd" / "opsctl-lab" / "ref-db2" / "payload").is_dir()  # not ours to take


def test_a_tree_whose_last_process_leaves_a_moment_later_is_removed(tmp_path: Path) -> None:
    """After nspawn exits, the container's last processes leave their cgroups a little later
    on a busy machine: removal tries the whole tree again until it is gone."""
    fs = _fs(tmp_path, "systemd")
    tree = fs / "systemd" / "opsctl-lab" / "ref-db1"
    busy = tree / "payload" / "init.scope"
    busy.mkdir(parents=True)
    (busy / "held").write_text("")
    threading.Timer(0.3, (busy / "held").unlink).start()
    cgroups.remove("ref-db1", fs, HYBRID, grace=5)
    assert not (fs / "systemd" / "opsctl-lab").exists()


def test_what_is_left_in_a_machines_cgroups_is_killed_by_pid(tmp_path: Path) -> None:
    """A container whose nspawn had to be killed leaves its processes running: they are in its
    cgroups, and only there (nothing else names them)."""
    fs = _fs(tmp_path, "systemd")
    orphan = subprocess.Popen(["sleep", "60"])
    try:
        scope = fs / "systemd" / "opsctl-lab" / "ref-db1" / "payload" / "init.scope"
        scope.mkdir(parents=True)
        (scope / "cgroup.procs").write_text(f"{orphan.pid}\n")
        other = fs / "systemd" / "opsctl-lab" / "ref-db2" / "payload"
        other.mkdir(parents=True)
        (other / "cgroup.procs").write_text(f"{os.getpid()}\n")  # another host's: untouched
        assert cgroups.kill("ref-db1", fs, HYBRID) == [orphan.pid]
        assert orphan.wait(timeout=5) == -signal.SIGKILL
    finally:
        orphan.kill()
