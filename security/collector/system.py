"""The host itself: its name, its OS release, and the container it may run in."""

from __future__ import annotations

import os
import shutil
import socket

from security.collector.base import FactError, kv_file, read_opt, run


def container_from_environ(environ: bytes) -> str | None:
    """PID 1's `container=` variable (NUL-separated environ); None when it has none."""
    for item in environ.split(b"\0"):
        if item.startswith(b"container="):
            return item.split(b"=", 1)[1].decode() or "container"
    return None


def detect_container() -> str:
    """The container technology this host runs in, from its own state; "" when none.

    The sources are asked in order and the first that answers wins, so this reads lazily
    (systemd-detect-virt runs only when nothing cheaper answered)."""
    try:
        with open("/proc/1/environ", "rb") as fh:
            found = container_from_environ(fh.read())
        if found is not None:
            return found
    except OSError:
        pass
    if os.path.exists("/run/systemd/container"):
        return (read_opt("/run/systemd/container") or "container").strip()
    if os.path.exists("/.dockerenv"):
        return "docker"
    if os.path.exists("/run/.containerenv"):
        return "podman"
    if shutil.which("systemd-detect-virt"):
        try:
            rc, out, _ = run(["systemd-detect-virt", "-c"], timeout=5)
            if rc == 0 and out.strip() not in ("", "none"):
                return out.strip()
        except FactError:
            pass
    return ""


def gather_system() -> dict:
    return {
        "os_release": read_opt("/etc/os-release"),
        "hostname": socket.gethostname(),
        "container": detect_container(),
        "pid1": read_opt("/proc/1/comm"),
        "systemd_running": os.path.isdir("/run/systemd/system"),
    }


def parse_system(read: dict) -> dict:
    osr = kv_file(read["os_release"] or "", "=")
    return {
        "hostname": read["hostname"],
        "os_id": str(osr.get("ID", "")).strip('"'),
        "os_version": str(osr.get("VERSION_ID", "")).strip('"'),
        "container": read["container"],
        "pid1": (read["pid1"] or "").strip(),
        "systemd_running": read["systemd_running"],
    }


def fact_system() -> dict:
    return parse_system(gather_system())
