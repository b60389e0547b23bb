"""Security audit: the kernel's audit subsystem (asked over netlink), its loaded rules, and
auditd's log settings."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import struct
import time

from security.collector.base import kv_file, read, read_opt, run
from security.collector.system import detect_container

AUDIT_GET = 1000
NETLINK_AUDIT = 9
NLMSG_ERROR = 2
AUDITD_CONF = "/etc/audit/auditd.conf"


# ---------------------------------------------------------------- audit

def kernel_audit_status() -> tuple[bool, str, int | None]:
    """Ask the kernel's audit subsystem for its status over netlink (what auditctl -s does):
    (available, why not, enabled)."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_AUDIT)
    except OSError as exc:
        return False, f"no audit netlink socket: {exc.strerror}", None
    try:
        sock.settimeout(2)
        sock.bind((0, 0))
        sock.send(struct.pack("=IHHII", 16, AUDIT_GET, 0x1 | 0x4, 1, 0))  # REQUEST|ACK
        for _ in range(4):
            data = sock.recv(8192)
            _length, mtype, _flags, _seq, _pid = struct.unpack("=IHHII", data[:16])
            if mtype == NLMSG_ERROR:
                errno = -struct.unpack("=i", data[16:20])[0]
                if errno:
                    return False, f"the kernel refused audit status: {os.strerror(errno)}", None
                continue
            if mtype == AUDIT_GET:
                _mask, enabled = struct.unpack("=II", data[16:24])
                return True, "", int(enabled)
        return False, "no audit status reply from the kernel", None
    except OSError as exc:
        return False, f"the kernel refused audit status: {exc.strerror}", None
    finally:
        sock.close()


def gather_audit() -> dict:
    available, reason, enabled = kernel_audit_status()
    auditctl = shutil.which("auditctl")
    return {
        "kernel": (available, reason, enabled),
        "container": detect_container(),
        "auditctl": auditctl,
        # The loaded rules, only when the kernel answered and auditctl is there to list them.
        "auditctl_list": run([auditctl, "-l"]) if available and auditctl else None,
        "cmdline": read_opt("/proc/cmdline"),
    }


def cmdline_value(cmdline: str, name: str) -> str | None:
    """The last `name=value` on a kernel command line (the kernel takes the last one)."""
    found = None
    for word in cmdline.split():
        key, sep, value = word.partition("=")
        if key == name and sep:
            found = value
    return found


def parse_audit(read_data: dict) -> dict:
    available, reason, enabled = read_data["kernel"]
    container = read_data["container"]
    if not available and container:
        reason = f"{reason} (running in a {container} container: kernel audit is not " \
                 "namespaced and belongs to the machine's host)"
    rules: list[str] = []
    rules_error = None
    if read_data["auditctl_list"] is not None:
        rc, out, err = read_data["auditctl_list"]
        if rc == 0:
            rules = [] if out.strip() == "No rules" else out.strip().splitlines()
        else:
            rules_error = err.strip()
    return {
        "kernel_available": available,
        "unavailable_reason": reason,
        "enabled": enabled,
        "immutable": enabled == 2,
        "auditctl_present": read_data["auditctl"] is not None,
        "rules": rules,
        "rules_error": rules_error,
        "rules_text": "\n".join(rules),
        # audit= on the kernel command line (None: not given). Inside a container this is the
        # machine's line, not this host's: the checks say so instead of judging it.
        "cmdline_audit": cmdline_value(read_data["cmdline"] or "", "audit"),
    }


def fact_audit() -> dict:
    return parse_audit(gather_audit())


# ---------------------------------------------------------------- auditd.conf

def audit_log_dir(conf: dict[str, int | str]) -> str:
    return os.path.dirname(str(conf.get("log_file", "/var/log/audit/audit.log")))


def gather_auditd_conf() -> dict:
    text = read_opt(AUDITD_CONF)
    if text is None and os.path.exists(AUDITD_CONF):
        read(AUDITD_CONF)  # unreadable: raise with the reason
    mtimes = None
    if text is not None:
        log_dir = audit_log_dir(kv_file(text, "="))
        with contextlib.suppress(OSError):
            mtimes = [os.stat(os.path.join(log_dir, n)).st_mtime for n in os.listdir(log_dir)]
    return {"conf": text, "log_mtimes": mtimes, "now": time.time()}


def parse_auditd_conf(read_data: dict) -> dict:
    text = read_data["conf"]
    if text is None:
        return {"present": False, "max_log_file_mb": None, "num_logs": None,
                "max_log_file_action": None, "rotate_capacity_mb": None,
                "space_left_action": None, "admin_space_left_action": None,
                "disk_full_action": None, "log_group": None, "oldest_log_days": None}
    conf = kv_file(text, "=")
    size = conf.get("max_log_file", 8)
    number = conf.get("num_logs", 5)
    action = str(conf.get("max_log_file_action", "ROTATE")).lower()
    capacity = int(size) * int(number) if isinstance(size, int) and isinstance(number, int) \
        else None
    mtimes = read_data["log_mtimes"]
    return {
        "present": True,
        "max_log_file_mb": size,
        "num_logs": number,
        "max_log_file_action": action,
        "rotate_capacity_mb": capacity if action == "rotate" else None,
        "space_left_action": str(conf.get("space_left_action", "SYSLOG")).lower(),
        "admin_space_left_action": str(conf.get("admin_space_left_action", "SUSPEND")).lower(),
        "disk_full_action": str(conf.get("disk_full_action", "SUSPEND")).lower(),
        "log_group": conf.get("log_group", "root"),
        "oldest_log_days": int((read_data["now"] - min(mtimes)) // 86400) if mtimes else None,
    }


def fact_auditd_conf() -> dict:
    return parse_auditd_conf(gather_auditd_conf())
