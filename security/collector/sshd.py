"""The SSH daemon's effective settings, as `sshd -T` prints them (drop-ins applied)."""

from __future__ import annotations

import os
import shutil

from security.collector.base import FactError, num, run

# Keys whose value is a comma-separated list.
SSHD_LIST_KEYS = {"ciphers", "macs", "kexalgorithms", "hostkeyalgorithms",
                  "pubkeyacceptedalgorithms", "authenticationmethods"}
# Keys sshd -T prints once per value.
SSHD_REPEATED_KEYS = ("listenaddress", "port", "allowusers", "allowgroups", "subsystem")


def gather_sshd() -> tuple[int, str, str]:
    """`sshd -T`'s exit status, output and errors."""
    binary = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd")
                                      else None)
    if binary is None:
        raise FactError("sshd is not installed")
    return run([binary, "-T"])


def parse_sshd(done: tuple[int, str, str]) -> dict:
    rc, out, err = done
    if rc != 0:
        raise FactError(f"sshd -T failed: {err.strip().splitlines()[-1] if err.strip() else rc}")
    settings: dict[str, object] = {}
    for line in out.splitlines():
        parts = line.split(None, 1)
        if not parts:
            continue
        key, value = parts[0].lower(), parts[1] if len(parts) > 1 else ""
        if key in SSHD_LIST_KEYS:
            settings[key] = value.split(",")
        elif key in SSHD_REPEATED_KEYS:
            prev = settings.get(key)
            settings[key] = [*(prev if isinstance(prev, list) else []), value]
        else:
            settings[key] = num(value)
    return settings


def fact_sshd() -> dict:
    return parse_sshd(gather_sshd())
