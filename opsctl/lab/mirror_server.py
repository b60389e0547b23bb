"""Serving the offline mirror to the lab's hosts from the control node's lab address."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from opsctl.errors import LabError


def _cmdline(pid: int) -> list[str]:
    try:
        return [p.decode() for p in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if p]
    except OSError:
        return []


def is_server(pid: int | None, address: str, port: int) -> bool:
    if not pid:
        return False
    cmd = _cmdline(pid)
    return "http.server" in cmd and address in cmd and str(port) in cmd


def find(address: str, port: int) -> int | None:
    """A server for this address and port whose PID an interrupted `lab up` did not record."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and is_server(int(proc.name), address, port):
            return int(proc.name)
    return None


def start(directory: Path, address: str, port: int, log: Path) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "http.server", "--bind", address, "--directory",
           str(directory), str(port)]
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    time.sleep(0.3)
    if proc.poll() is not None:
        raise LabError(f"mirror server on {address}:{port} exited at once; see {log}")
    return proc.pid


def stop(pid: int | None, address: str, port: int) -> bool:
    if not is_server(pid, address, port):
        return False
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    for _ in range(50):
        try:
            os.waitpid(pid, os.WNOHANG)
            os.kill(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            break
        time.sleep(0.05)
    return True
