"""The kernel's settings as this host sees them: kernel parameters (and whether this host may
change them), mounts and /tmp's cleanup, core-dump limits, and swap's encryption."""

from __future__ import annotations

import os
import re

from security.collector.base import conf_dir, num, read, read_files, read_opt, texts_lines
from security.collector.system import detect_container

# Kernel parameters the catalog checks (read from /proc/sys: the effective values `sysctl -a`
# shows). The catalog may only name these.
SYSCTL_KEYS = (
    "net.ipv4.ip_forward", "net.ipv4.conf.all.accept_redirects",
    "net.ipv4.conf.default.accept_redirects", "net.ipv4.conf.all.send_redirects",
    "net.ipv4.conf.default.send_redirects", "net.ipv4.conf.all.accept_source_route",
    "net.ipv4.conf.default.accept_source_route", "net.ipv4.conf.all.rp_filter",
    "net.ipv4.conf.default.rp_filter", "net.ipv4.tcp_syncookies",
    "net.ipv4.conf.all.log_martians", "net.ipv4.icmp_echo_ignore_broadcasts",
    "net.ipv6.conf.all.accept_redirects", "net.ipv6.conf.all.accept_source_route",
    "kernel.kptr_restrict", "kernel.dmesg_restrict", "kernel.randomize_va_space",
    "fs.suid_dumpable", "fs.protected_hardlinks", "fs.protected_symlinks",
    "kernel.yama.ptrace_scope",
)
BLOCK_DEPTH_MAX = 4  # partition → LVM → dm-crypt → ... : deeper stacks are not followed


# ---------------------------------------------------------------- sysctl

def gather_sysctl() -> dict[str, str | None]:
    return {key: read_opt("/proc/sys/" + key.replace(".", "/")) for key in SYSCTL_KEYS}


def parse_sysctl(values: dict[str, str | None]) -> dict:
    return {key: None if text is None else num(text.strip()) for key, text in values.items()}


def fact_sysctl() -> dict:
    return parse_sysctl(gather_sysctl())


def gather_sysctl_access() -> dict:
    read_only = bool(os.statvfs("/proc/sys").f_flag & os.ST_RDONLY)
    # The container matters only to explain a read-only /proc/sys.
    return {"read_only": read_only, "container": detect_container() if read_only else ""}


def parse_sysctl_access(read_data: dict) -> dict:
    """Whether this host may change kernel parameters: /proc/sys is mounted read-only inside a
    container (the parameters belong to the machine's kernel, or to whoever made the namespace)."""
    reason = ""
    if read_data["read_only"]:
        container = read_data["container"]
        reason = "/proc/sys is mounted read-only" + (
            f" (a {container} container: the machine that runs it sets these)" if container else "")
    return {"read_only": read_data["read_only"], "reason": reason}


def fact_sysctl_access() -> dict:
    return parse_sysctl_access(gather_sysctl_access())


# ---------------------------------------------------------------- mounts

def gather_mounts() -> dict:
    return {"mounts": read("/proc/mounts"),
            "tmpfiles": read_files(["/usr/lib/tmpfiles.d/tmp.conf", *conf_dir("/etc/tmpfiles.d")])}


def tmpfiles_clean_tmp(all_lines: list[str]) -> bool:
    """A tmpfiles.d line empties /tmp at boot (`D`) or ages its files (an age field: the
    sixth, `Type Path Mode User Group Age Argument`)."""
    for line in all_lines:
        f = line.split()
        if len(f) >= 2 and f[1] == "/tmp" and (f[0] in ("D", "D!") or
                                               (len(f) >= 6 and f[5] not in ("-", ""))):
            return True
    return False


def parse_mounts(read_data: dict) -> dict:
    mounts = {}
    for line in read_data["mounts"].splitlines():
        f = line.split()
        if len(f) >= 4:
            mounts[f[1]] = {"fstype": f[2], "options": f[3].split(",")}
    tmp = mounts.get("/tmp")
    cleanup = tmpfiles_clean_tmp(texts_lines(read_data["tmpfiles"]))
    return {
        "tmp_fstype": tmp["fstype"] if tmp else None,
        "tmp_options": tmp["options"] if tmp else [],
        "tmp_cleanup": cleanup or bool(tmp and tmp["fstype"] == "tmpfs"),
        "shm_options": mounts.get("/dev/shm", {}).get("options", []),
    }


def fact_mounts() -> dict:
    return parse_mounts(gather_mounts())


# ---------------------------------------------------------------- core dumps

def gather_limits() -> dict:
    return {"limits": read_files(["/etc/security/limits.conf",
                                  *conf_dir("/etc/security/limits.d")]),
            "coredump": read_files(["/etc/systemd/coredump.conf",
                                    *conf_dir("/etc/systemd/coredump.conf.d")])}


def parse_limits(read_data: dict) -> dict:
    hard_core_zero = any(line.split()[:4] == ["*", "hard", "core", "0"]
                         for line in texts_lines(read_data["limits"]))
    storage = None
    for line in texts_lines(read_data["coredump"]):
        m = re.match(r"Storage\s*=\s*(\w+)", line)
        if m:
            storage = m.group(1).lower()
    return {"hard_core_zero": hard_core_zero, "coredump_storage": storage}


def fact_limits() -> dict:
    return parse_limits(gather_limits())


# ---------------------------------------------------------------- swap

def block_is_crypt(sysdir: str, depth: int = 0) -> bool:
    """A block device (its /sys/dev/block directory) is dm-crypt, or sits on one."""
    if depth > BLOCK_DEPTH_MAX:
        return False
    if (read_opt(os.path.join(sysdir, "dm", "uuid")) or "").startswith("CRYPT-"):
        return True
    # a partition's parent, or the devices a device-mapper target sits on
    slaves = os.path.join(sysdir, "slaves")
    try:
        below = [os.path.join(slaves, n) for n in os.listdir(slaves)]
    except OSError:
        below = []
    return any(block_is_crypt(os.path.realpath(b), depth + 1) for b in below)


def on_dm_crypt(path: str, kind: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    dev = st.st_rdev if kind == "partition" else st.st_dev
    return block_is_crypt(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")


def swap_entries(text: str) -> list[tuple[str, str]]:
    """/proc/swaps → (path, type) of each active swap area."""
    out = []
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) >= 2:
            out.append((f[0], f[1]))
    return out


def gather_swap() -> dict:
    text = read("/proc/swaps")
    return {"swaps": text,
            "encrypted": {path: on_dm_crypt(path, kind) for path, kind in swap_entries(text)}}


def parse_swap(read_data: dict) -> dict:
    """Active swap and whether each lies on dm-crypt (directly, or below LVM)."""
    active = [path for path, _kind in swap_entries(read_data["swaps"])]
    return {"active": active,
            "unencrypted": [path for path in active if not read_data["encrypted"].get(path)]}


def fact_swap() -> dict:
    return parse_swap(gather_swap())
