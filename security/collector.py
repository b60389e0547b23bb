#!/usr/bin/env python3
"""The host fact collector: gathers every fact the check catalog reads, prints one JSON document.

Self-contained on purpose: standard library only, shipped to a host over SSH and run with
`python3 -` (or run locally by `opsctl check --local`). It only reads; it changes nothing.

Each fact group is gathered by its own function; a group that cannot be gathered (missing
command, unreadable file) becomes {"error": "reason"} and the scan goes on. Secrets never leave
the host: from /etc/shadow only derived facts (which accounts have an empty password, which
are locked, password ages) are reported, never a hash.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import stat
import struct
import subprocess
import sys
import time

SCHEMA = "opsctl-facts/1"

# Files whose owner and mode the catalog checks. The catalog may only name these.
STAT_FILES = (
    "/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow", "/etc/sudoers",
    "/etc/ssh/sshd_config", "/etc/crontab", "/etc/cron.d", "/etc/cron.hourly",
    "/etc/cron.daily", "/etc/cron.weekly", "/etc/cron.monthly", "/etc/login.defs",
    "/etc/audit/auditd.conf", "/etc/audit/rules.d", "/var/log/audit", "/var/log/auth.log",
    "/var/log/syslog", "/etc/security/pwquality.conf", "/etc/security/faillock.conf",
    "/etc/rsyslog.conf", "/boot/grub/grub.cfg",
)
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
# Units whose state the catalog checks.
UNITS = (
    "auditd.service", "rsyslog.service", "ssh.service", "nftables.service",
    "telnet.socket", "inetutils-inetd.service", "openbsd-inetd.service", "rsh.socket",
    "avahi-daemon.service", "cups.service", "rpcbind.service", "nfs-server.service",
    "smbd.service", "vsftpd.service", "snmpd.service", "apache2.service", "bluetooth.service",
    "clamav-daemon.service", "clamav-freshclam.service", "chrony.service",
    "systemd-timesyncd.service", "aidecheck.timer", "dailyaidecheck.timer", "tmp.mount",
)
# Units a role leaves off on purpose (auditd where the kernel refuses audit): one file per unit,
# named as the unit, whose first line is the reason. The hardening role writes it
# (hardening_disabled_units_dir); the monitoring agent reads the same directory
# (tests/unit/test_one_source.py ties the copies).
DISABLED_UNITS_DIR = "/etc/opsctl/disabled-units.d"
DISABLED_REASON_MAX = 200
UNIT_NAME = re.compile(r"[A-Za-z0-9:_.@\\-]+\.(service|socket|device|mount|automount|swap|"
                       r"target|path|timer|slice|scope)")
# Account names that suggest a shared or generic account (8.1.4.2 c).
GENERIC_NAMES = ("guest", "test", "temp", "share", "shared", "user", "demo", "public")
# Where the walk for world-writable files looks, and for data dumps in home directories.
SYSTEM_DIRS = ("/etc", "/usr/bin", "/usr/sbin", "/usr/local", "/boot", "/opt")
DUMP_SUFFIXES = (".sql", ".sql.gz", ".dump", ".csv", ".xls", ".xlsx", ".bak", ".tar.gz",
                 ".zip", ".json.gz")
WALK_SECONDS = 3.0
WALK_MAX_HITS = 50

NOLOGIN = ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false", "/usr/bin/false", "/bin/sync",
           "")


class FactError(Exception):
    """A fact group could not be gathered; the message says why."""


# ---------------------------------------------------------------- helpers

def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except FileNotFoundError:
        raise FactError(f"{path}: no such file") from None
    except OSError as exc:
        raise FactError(f"{path}: {exc.strerror}") from None


def _read_opt(path: str) -> str | None:
    try:
        return _read(path)
    except FactError:
        return None


def _run(argv: list[str], timeout: float = 10) -> tuple[int, str, str]:
    if shutil.which(argv[0]) is None and not os.path.exists(argv[0]):
        raise FactError(f"{argv[0]}: command not found")
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise FactError(f"{' '.join(argv)}: timed out after {timeout:g}s") from None
    except OSError as exc:
        raise FactError(f"{argv[0]}: {exc.strerror}") from None
    return proc.returncode, proc.stdout, proc.stderr


def _lines(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def _conf_dir(directory: str, suffix: str = ".conf") -> list[str]:
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(suffix))
    except OSError:
        return []
    return [os.path.join(directory, n) for n in names]


def _num(value: str) -> int | str:
    # "022" stays a string: it is an octal mode, and its leading zero means something.
    return int(value) if re.fullmatch(r"-?(0|[1-9]\d*)", value) else value


def _kv_file(text: str, sep: str | None = None) -> dict[str, int | str]:
    result: dict[str, int | str] = {}
    for line in _lines(text):
        if sep:
            if sep not in line:
                continue
            key, value = line.split(sep, 1)
        else:
            parts = line.split(None, 1)
            key, value = parts[0], parts[1] if len(parts) > 1 else ""
        result[key.strip()] = _num(value.strip())
    return result


def _pam_lines(name: str) -> list[list[str]]:
    return parse_pam_lines(_read(f"/etc/pam.d/{name}"))


def parse_pam_lines(text: str) -> list[list[str]]:
    """A PAM file's effective lines as [type, control, module, args...]."""
    rows = []
    for line in _lines(text):
        # Bracketed controls contain spaces: keep them as one field.
        m = re.match(r"(\S+)\s+(\[[^\]]*\]|\S+)\s+(\S+)\s*(.*)", line)
        if m:
            rows.append([m.group(1), m.group(2), m.group(3), *m.group(4).split()])
    return rows


def _pam_args(rows: list[list[str]], module: str) -> dict[str, int | str]:
    args: dict[str, int | str] = {}
    for row in rows:
        if row[2].endswith(module):
            for arg in row[3:]:
                key, _, value = arg.partition("=")
                args[key] = _num(value) if value else True  # type: ignore[assignment]
    return args


# ---------------------------------------------------------------- fact groups

def fact_system() -> dict:
    osr = _kv_file(_read_opt("/etc/os-release") or "", "=")
    return {
        "hostname": socket.gethostname(),
        "os_id": str(osr.get("ID", "")).strip('"'),
        "os_version": str(osr.get("VERSION_ID", "")).strip('"'),
        "container": _container(),
        "pid1": (_read_opt("/proc/1/comm") or "").strip(),
        "systemd_running": os.path.isdir("/run/systemd/system"),
    }


def _container() -> str:
    """The container technology this host runs in, from its own state; "" when none."""
    try:
        with open("/proc/1/environ", "rb") as fh:
            for item in fh.read().split(b"\0"):
                if item.startswith(b"container="):
                    return item.split(b"=", 1)[1].decode() or "container"
    except OSError:
        pass
    if os.path.exists("/run/systemd/container"):
        return (_read_opt("/run/systemd/container") or "container").strip()
    if os.path.exists("/.dockerenv"):
        return "docker"
    if os.path.exists("/run/.containerenv"):
        return "podman"
    if shutil.which("systemd-detect-virt"):
        try:
            rc, out, _ = _run(["systemd-detect-virt", "-c"], timeout=5)
            if rc == 0 and out.strip() not in ("", "none"):
                return out.strip()
        except FactError:
            pass
    return ""


def fact_accounts() -> dict:
    passwd = []
    for line in _read("/etc/passwd").splitlines():
        f = line.split(":")
        if len(f) >= 7:
            passwd.append({"name": f[0], "uid": int(f[2]), "gid": int(f[3]), "home": f[5],
                           "shell": f[6]})
    shadow: dict[str, list[str]] = {}
    for line in _read("/etc/shadow").splitlines():
        f = line.split(":")
        if len(f) >= 8:
            shadow[f[0]] = f
    groups: dict[str, list[str]] = {}
    group_rows: list[tuple[str, str]] = []  # (name, gid) in file order, duplicates kept
    for line in _read("/etc/group").splitlines():
        f = line.split(":")
        if len(f) >= 4:
            groups[f[0]] = [m for m in f[3].split(",") if m]
            group_rows.append((f[0], f[2].strip()))

    def hash_state(name: str) -> str:
        entry = shadow.get(name)
        if entry is None:
            return "missing"
        h = entry[1]
        if h == "":
            return "empty"
        if h.startswith(("!", "*")):
            return "locked"
        return "set"

    def age(name: str, idx: int) -> int | None:
        entry = shadow.get(name)
        if entry is None or not entry[idx].strip().lstrip("-").isdigit():
            return None
        return int(entry[idx])

    def ssh_restricted(home: str) -> bool:
        """Has authorized keys, and every one carries a from= option (no other way in)."""
        try:
            with open(os.path.join(home, ".ssh", "authorized_keys"), encoding="utf-8") as f:
                keys = [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
        except OSError:
            return False
        return bool(keys) and all(k.startswith("from=") or ",from=" in k.split(" ", 1)[0]
                                  for k in keys)

    def scheme(name: str) -> str:
        """The hash scheme of a usable password, from its prefix only (never the hash)."""
        return hash_scheme(shadow[name][1])

    def inactive(name: str) -> int:
        """Days after expiry until the account is disabled; unset (or -1) never: 99999."""
        days = age(name, 6)
        return days if days is not None and days >= 0 else 99999

    uids: dict[int, list[str]] = {}
    names: dict[str, int] = {}
    for p in passwd:
        uids.setdefault(p["uid"], []).append(p["name"])
        names[p["name"]] = names.get(p["name"], 0) + 1
    login = [p for p in passwd if p["shell"] not in NOLOGIN]
    with_password = [p["name"] for p in passwd if hash_state(p["name"]) == "set"]
    max_days = [age(n, 4) for n in with_password]
    min_days = [age(n, 3) for n in with_password]
    warn = [age(n, 5) for n in with_password]
    today = int(time.time() // 86400)
    changed = [age(n, 2) for n in with_password]
    # People's accounts (UID 1000 and up, not nobody) that log in with a password.
    human = sorted(p["name"] for p in passwd if 1000 <= p["uid"] < 65534
                   and hash_state(p["name"]) == "set")
    gids: dict[str, list[str]] = {}
    group_names: dict[str, int] = {}
    for gname, gid in group_rows:
        gids.setdefault(gid, []).append(gname)
        group_names[gname] = group_names.get(gname, 0) + 1
    useradd = _kv_file(_read_opt("/etc/default/useradd") or "", "=")
    inactive_default = useradd.get("INACTIVE")
    return {
        "count": len(passwd),
        "duplicate_uids": sorted(u for u, n in uids.items() if len(n) > 1),
        "duplicate_names": sorted(n for n, c in names.items() if c > 1),
        "uid0_accounts": sorted(p["name"] for p in passwd if p["uid"] == 0),
        "empty_password": sorted(p["name"] for p in passwd if hash_state(p["name"]) == "empty"),
        "missing_shadow_entry": sorted(p["name"] for p in passwd
                                       if hash_state(p["name"]) == "missing"),
        "login_accounts": sorted(p["name"] for p in login),
        "system_accounts_with_shell": sorted(
            p["name"] for p in login if 0 < p["uid"] < 1000 and not ssh_restricted(p["home"])),
        # Service accounts that must keep a shell for one peer's SSH (pgBackRest between the
        # database and repository hosts): every key they accept is bound to an address.
        "system_accounts_ssh_restricted": sorted(
            p["name"] for p in login if 0 < p["uid"] < 1000 and ssh_restricted(p["home"])),
        "system_accounts_unlocked": sorted(
            p["name"] for p in passwd if 0 < p["uid"] < 1000 and hash_state(p["name"]) == "set"),
        "root_password_state": hash_state("root"),
        "generic_login_accounts": sorted(p["name"] for p in login if p["name"] in GENERIC_NAMES),
        "login_accounts_without_home": sorted(
            p["name"] for p in login if p["uid"] >= 1000 and not os.path.isdir(p["home"])),
        "password_accounts": sorted(with_password),
        "password_max_days_max": max((d if d is not None else 99999 for d in max_days),
                                     default=None),
        "password_min_days_min": min((d if d is not None else 0 for d in min_days), default=None),
        "password_warn_days_min": min((d if d is not None else 0 for d in warn), default=None),
        "password_oldest_change_days": max((today - d for d in changed if d is not None),
                                           default=None),
        "groups": sorted(groups),
        "group_members": {g: m for g, m in sorted(groups.items()) if m},
        "duplicate_gids": sorted(int(g) for g, n in gids.items() if len(n) > 1 and g.isdigit()),
        "duplicate_group_names": sorted(n for n, c in group_names.items() if c > 1),
        "gid0_groups": sorted(n for n, g in group_rows if g == "0"),
        "gid0_primary_accounts": sorted(p["name"] for p in passwd if p["gid"] == 0),
        # Only the scheme each usable password is hashed with: never the hash itself.
        "password_hash_by_account": {n: scheme(n) for n in sorted(with_password)},
        "password_hash_schemes": sorted({scheme(n) for n in with_password}),
        # /etc/default/useradd INACTIVE: unset is useradd's -1 (never disabled).
        "inactive_default": inactive_default if isinstance(inactive_default, int) else -1,
        "human_password_accounts": human,
        "human_inactive_days_max": max((inactive(n) for n in human), default=None),
    }


# crypt(5) prefixes → scheme names. The collector reports the name, never the hash.
HASH_PREFIXES = {
    "1": "md5", "2a": "bcrypt", "2b": "bcrypt", "2x": "bcrypt", "2y": "bcrypt",
    "3": "nthash", "5": "sha256", "6": "sha512", "7": "scrypt", "y": "yescrypt",
    "gy": "gost-yescrypt", "md5": "sunmd5", "sha1": "sha1crypt",
}


def hash_scheme(hashed: str) -> str:
    """The crypt(5) scheme of a hashed password, from its prefix: descrypt is 13 characters of
    [./0-9A-Za-z] without a `$` (what crypt(3) did before schemes existed), bsdicrypt starts with
    `_`; anything else is `unknown`."""
    if hashed.startswith("$"):
        return HASH_PREFIXES.get(hashed.split("$")[1], "unknown")
    if hashed.startswith("_") and len(hashed) == 20:
        return "bsdicrypt"
    if re.fullmatch(r"[./0-9A-Za-z]{13}", hashed):
        return "descrypt"
    return "unknown"



def fact_login_defs() -> dict:
    return _kv_file(_read("/etc/login.defs"))


def fact_pam() -> dict:
    auth = _pam_lines("common-auth")
    password = _pam_lines("common-password")
    account = _pam_lines("common-account")
    session = _pam_lines("common-session")
    mods = {
        "common_auth_modules": [r[2] for r in auth],
        "common_password_modules": [r[2] for r in password],
        "common_account_modules": [r[2] for r in account],
        "common_session_modules": [r[2] for r in session],
    }
    nullok = sorted({f"common-{n}" for n, rows in (("auth", auth), ("password", password))
                     for r in rows if r[2].endswith("pam_unix.so") and "nullok" in r[3:]})
    pam_unix_pw = _pam_args(password, "pam_unix.so")
    hashes = [h for h in ("yescrypt", "sha512", "sha256", "md5", "bigcrypt", "blowfish")
              if h in pam_unix_pw]
    remember = _pam_args(password, "pam_pwhistory.so").get("remember",
                                                          pam_unix_pw.get("remember"))
    second_factor = sorted({r[2] for r in auth if any(k in r[2] for k in (
        "pam_google_authenticator", "pam_oath", "pam_u2f", "pam_yubico", "pam_duo", "pam_otp"))})
    return {
        **mods,
        "nullok_in": nullok,
        "pwquality_enabled": any(m.endswith("pam_pwquality.so") for m in
                                 mods["common_password_modules"]),
        "faillock_enabled": any(m.endswith("pam_faillock.so") for m in
                                mods["common_auth_modules"]),
        **faillock_order(auth, account),
        "password_hash": hashes[0] if hashes else None,
        "pwhistory_remember": remember if isinstance(remember, int) else None,
        "second_factor_modules": second_factor,
        "su_restricted_to_group": any(r[2].endswith("pam_wheel.so") and r[0] == "auth"
                                      for r in _pam_lines_opt("su")),
    }


def _stops_on_failure(control: str) -> bool:
    return control in ("required", "requisite") or "default=die" in control \
        or "default=bad" in control


def faillock_order(auth: list[list[str]], account: list[list[str]]) -> dict[str, bool]:
    """pam_faillock counts and refuses only in this order (pam_faillock(8)): `preauth` before
    pam_unix in auth (a locked account is refused before its password is asked), `authfail`
    after it (a failure is counted), and the module in account (a success resets the count)."""
    def first(pred) -> int | None:
        return next((i for i, r in enumerate(auth) if pred(r)), None)

    unix = first(lambda r: r[2].endswith("pam_unix.so"))
    preauth = first(lambda r: r[2].endswith("pam_faillock.so") and "preauth" in r[3:]
                    and _stops_on_failure(r[1]))
    authfail = [i for i, r in enumerate(auth) if r[2].endswith("pam_faillock.so")
                and "authfail" in r[3:] and _stops_on_failure(r[1])]
    return {
        "faillock_preauth_before_unix": None not in (preauth, unix) and preauth < unix,
        "faillock_authfail_after_unix": unix is not None and any(i > unix for i in authfail),
        "faillock_in_account": any(r[2].endswith("pam_faillock.so") for r in account),
    }


def _pam_lines_opt(name: str) -> list[list[str]]:
    try:
        return _pam_lines(name)
    except FactError:
        return []


def fact_pwquality() -> dict:
    settings: dict[str, int | str] = {}
    sources = []
    for path in ["/etc/security/pwquality.conf", *_conf_dir("/etc/security/pwquality.conf.d")]:
        text = _read_opt(path)
        if text is not None:
            settings.update(_kv_file(text, "="))
            # Keywords without a value (enforce_for_root, local_users_only) are flags.
            settings.update({line: True for line in _lines(text) if "=" not in line})
            sources.append(path)
    try:
        args = _pam_args(_pam_lines("common-password"), "pam_pwquality.so")
    except FactError:
        args = {}
    if args:
        sources.append("/etc/pam.d/common-password")
    settings.update({k: v for k, v in args.items() if not isinstance(v, bool)})
    # The effective minimum classes: minclass, or the credits that demand a class (< 0).
    credits = sum(1 for k in ("dcredit", "ucredit", "lcredit", "ocredit")
                  if isinstance(settings.get(k), int) and int(settings[k]) < 0)
    minclass = settings.get("minclass", 0)
    return {
        "minlen": settings.get("minlen", 8),
        "minclass": max(int(minclass) if isinstance(minclass, int) else 0, credits),
        "retry": settings.get("retry", 1),
        "enforce_for_root": bool(settings.get("enforce_for_root")) or "enforce_for_root" in args,
        "dictcheck": settings.get("dictcheck", 1),
        "sources": sources,
    }


def fact_faillock() -> dict:
    settings: dict[str, int | str | bool] = {}
    text = _read_opt("/etc/security/faillock.conf")
    sources = []
    if text is not None:
        sources.append("/etc/security/faillock.conf")
        for line in _lines(text):
            if "=" in line:
                k, v = line.split("=", 1)
                settings[k.strip()] = _num(v.strip())
            else:
                settings[line] = True
    try:
        args = _pam_args(_pam_lines("common-auth"), "pam_faillock.so")
    except FactError:
        args = {}
    if args:
        sources.append("/etc/pam.d/common-auth")
    settings.update(args)
    return {
        "deny": settings.get("deny", 3),
        "unlock_time": settings.get("unlock_time", 600),
        "fail_interval": settings.get("fail_interval", 900),
        "even_deny_root": bool(settings.get("even_deny_root", False)),
        "sources": sources,
    }


def fact_shell() -> dict:
    """Idle timeout (TMOUT) and umask as login shells set them."""
    files = ["/etc/profile", "/etc/bash.bashrc", *_conf_dir("/etc/profile.d", ".sh")]
    tmout: list[int] = []
    readonly = False
    umasks: list[str] = []
    where = []
    for path in files:
        text = _read_opt(path)
        if text is None:
            continue
        for line in _lines(text):
            m = re.search(r"\bTMOUT=(\d+)", line)
            if m:
                tmout.append(int(m.group(1)))
                where.append(path)
            if re.search(r"\breadonly\s+TMOUT\b|\bdeclare\s+-[a-z]*r[a-z]*\s+TMOUT", line) or \
                    re.search(r"\btypeset\s+-[a-z]*r[a-z]*\s+TMOUT", line):
                readonly = True
            m = re.match(r"umask\s+(0?[0-7]{3})\b", line)
            if m:
                umasks.append(m.group(1).rjust(4, "0"))
    return {
        "tmout": min(tmout) if tmout else None,
        "tmout_readonly": readonly,
        "tmout_sources": sorted(set(where)),
        "profile_umask": umasks[-1] if umasks else None,
    }


def fact_sshd() -> dict:
    binary = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd")
                                      else None)
    if binary is None:
        raise FactError("sshd is not installed")
    rc, out, err = _run([binary, "-T"])
    if rc != 0:
        raise FactError(f"sshd -T failed: {err.strip().splitlines()[-1] if err.strip() else rc}")
    settings: dict[str, object] = {}
    multi = {"ciphers", "macs", "kexalgorithms", "hostkeyalgorithms", "pubkeyacceptedalgorithms",
             "authenticationmethods"}
    for line in out.splitlines():
        parts = line.split(None, 1)
        if not parts:
            continue
        key, value = parts[0].lower(), parts[1] if len(parts) > 1 else ""
        if key in multi:
            settings[key] = value.split(",")
        elif key in ("listenaddress", "port", "allowusers", "allowgroups", "subsystem"):
            prev = settings.get(key)
            settings[key] = [*(prev if isinstance(prev, list) else []), value]
        else:
            settings[key] = _num(value)
    return settings


def parse_dpkg_status(text: str) -> dict:
    """dpkg's status file → installed binary packages with their versions, and each one's
    source package and source version: what `dpkg-query -W -f '${source:Package}
    ${source:Version}'` derives from the same file (`Source: NAME (VERSION)`; no version: the
    binary's; no Source field: the binary itself)."""
    installed: dict[str, str] = {}
    sources: dict[str, list[str]] = {}
    for block in text.split("\n\n"):
        name = version = status = source = ""
        for line in block.splitlines():
            if line.startswith("Package: "):
                name = line[9:].strip()
            elif line.startswith("Version: "):
                version = line[9:].strip()
            elif line.startswith("Status: "):
                status = line[8:].strip()
            elif line.startswith("Source: "):
                source = line[8:].strip()
        if name and status.endswith(" installed"):
            installed[name] = version
            src_name, _, src_version = source.partition(" (")
            sources[name] = [src_name.strip() or name, src_version.rstrip(")").strip() or version]
    return {"count": len(installed), "installed": installed, "sources": sources}


def fact_packages() -> dict:
    return parse_dpkg_status(_read("/var/lib/dpkg/status"))


def parse_disabled_units(entries: dict[str, str]) -> dict[str, str]:
    """{file name: content} of DISABLED_UNITS_DIR → {unit: reason}, as the agent reads it: files
    not named like a unit are not entries; the reason is the first non-blank line, cut."""
    out: dict[str, str] = {}
    for name, text in entries.items():
        if not UNIT_NAME.fullmatch(name):
            continue
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        reason = lines[0] if lines else "(none recorded)"
        out[name] = reason if len(reason) <= DISABLED_REASON_MAX else \
            reason[:DISABLED_REASON_MAX - 1] + "…"
    return out


def _disabled_units(directory: str = DISABLED_UNITS_DIR) -> dict[str, str]:
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise FactError(f"{directory}: {exc.strerror}") from None
    entries = {}
    for name in names:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            entries[name] = _read(path)
    return parse_disabled_units(entries)


def fact_services() -> dict:
    if not os.path.isdir("/run/systemd/system"):
        raise FactError("systemd is not running on this host (PID 1 is "
                        f"{(_read_opt('/proc/1/comm') or '?').strip()}), unit states unknown")
    props = "Id,LoadState,ActiveState,UnitFileState,RefuseManualStop"
    rc, out, err = _run(["systemctl", "show", "--no-pager", "-p", props, *UNITS])
    if rc != 0:
        raise FactError(f"systemctl show failed: {err.strip()}")
    return parse_services(out, _disabled_units())


def parse_services(show: str, disabled: dict[str, str]) -> dict:
    """`systemctl show -p Id,LoadState,ActiveState,UnitFileState,RefuseManualStop UNIT…` and
    the units left off by design → per unit its state and, when recorded, why it is off."""
    units: dict[str, dict] = {}
    for block in show.strip().split("\n\n"):
        kv = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if "Id" in kv:
            units[kv["Id"]] = {
                "present": kv.get("LoadState") == "loaded",
                "active": kv.get("ActiveState"),
                "enabled": kv.get("UnitFileState") or None,
                "refuse_manual_stop": kv.get("RefuseManualStop") == "yes",
                "disabled_by_design": disabled.get(kv["Id"]),
            }
    return units


def fact_processes() -> dict:
    names = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/comm") as fh:
                    names.add(fh.read().strip())
            except OSError:
                continue
    return {"names": sorted(names)}


AUDIT_GET = 1000
NETLINK_AUDIT = 9


def _kernel_audit_status() -> tuple[bool, str, int | None]:
    """Ask the kernel's audit subsystem for its status over netlink (what auditctl -s does)."""
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
            if mtype == 2:  # NLMSG_ERROR
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


def fact_audit() -> dict:
    available, reason, enabled = _kernel_audit_status()
    container = _container()
    if not available and container:
        reason = f"{reason} (running in a {container} container: kernel audit is not " \
                 "namespaced and belongs to the machine's host)"
    rules: list[str] = []
    auditctl = shutil.which("auditctl")
    rules_error = None
    if available and auditctl:
        rc, out, err = _run([auditctl, "-l"])
        if rc == 0:
            rules = [] if out.strip() == "No rules" else out.strip().splitlines()
        else:
            rules_error = err.strip()
    return {
        "kernel_available": available,
        "unavailable_reason": reason,
        "enabled": enabled,
        "immutable": enabled == 2,
        "auditctl_present": auditctl is not None,
        "rules": rules,
        "rules_error": rules_error,
        "rules_text": "\n".join(rules),
        # audit= on the kernel command line (None: not given). Inside a container this is the
        # machine's line, not this host's: the checks say so instead of judging it.
        "cmdline_audit": cmdline_value(_read_opt("/proc/cmdline") or "", "audit"),
    }


def cmdline_value(cmdline: str, name: str) -> str | None:
    """The last `name=value` on a kernel command line (the kernel takes the last one)."""
    found = None
    for word in cmdline.split():
        key, sep, value = word.partition("=")
        if key == name and sep:
            found = value
    return found


def fact_auditd_conf() -> dict:
    text = _read_opt("/etc/audit/auditd.conf")
    if text is None and os.path.exists("/etc/audit/auditd.conf"):
        _read("/etc/audit/auditd.conf")  # unreadable: raise with the reason
    if text is None:
        return {"present": False, "max_log_file_mb": None, "num_logs": None,
                "max_log_file_action": None, "rotate_capacity_mb": None,
                "space_left_action": None, "admin_space_left_action": None,
                "disk_full_action": None, "log_group": None, "oldest_log_days": None}
    conf = _kv_file(text, "=")
    size = conf.get("max_log_file", 8)
    num = conf.get("num_logs", 5)
    action = str(conf.get("max_log_file_action", "ROTATE")).lower()
    capacity = int(size) * int(num) if isinstance(size, int) and isinstance(num, int) else None
    log_dir = os.path.dirname(str(conf.get("log_file", "/var/log/audit/audit.log")))
    oldest = None
    try:
        mtimes = [os.stat(os.path.join(log_dir, n)).st_mtime for n in os.listdir(log_dir)]
        if mtimes:
            oldest = int((time.time() - min(mtimes)) // 86400)
    except OSError:
        pass
    return {
        "present": True,
        "max_log_file_mb": size,
        "num_logs": num,
        "max_log_file_action": action,
        "rotate_capacity_mb": capacity if action == "rotate" else None,
        "space_left_action": str(conf.get("space_left_action", "SYSLOG")).lower(),
        "admin_space_left_action": str(conf.get("admin_space_left_action", "SUSPEND")).lower(),
        "disk_full_action": str(conf.get("disk_full_action", "SUSPEND")).lower(),
        "log_group": conf.get("log_group", "root"),
        "oldest_log_days": oldest,
    }


_RS_BLOCK = re.compile(r"\b(action|input|module|template)\s*\((.*?)\)", re.S | re.I)
_RS_PARAM = re.compile(r'([\w.]+)\s*=\s*(?:"([^"]*)"|\[([^\]]*)\]|(\S+))')
_RS_SECURE = ("gtls", "ossl")
_ROTATE_PERIOD = {"daily": 1, "weekly": 7, "monthly": 30, "yearly": 365}


def _rs_params(body: str) -> dict:
    params = {}
    for m in _RS_PARAM.finditer(body):
        value = m.group(2) if m.group(2) is not None else (
            m.group(3) if m.group(3) is not None else m.group(4))
        params[m.group(1).lower()] = value
    return params


def _rs_text(text: str) -> str:
    # Whole-line comments out; blocks may span lines.
    return "\n".join(line for line in text.splitlines() if not line.strip().startswith("#"))


def _logrotate_days(paths: list[str], prefix: str) -> int | None:
    """Days logrotate keeps the files under prefix (rotate x period, capped by maxage)."""
    best = None
    for path in paths:
        text = _rs_text(_read_opt(path) or "")
        for m in re.finditer(r"([^{}]*?)\{([^}]*)\}", text):
            targets = m.group(1).split()
            if not any(t.startswith(prefix) for t in targets):
                continue
            body = m.group(2).split()
            period = next((_ROTATE_PERIOD[w] for w in body if w in _ROTATE_PERIOD), 7)
            rotate = next((int(body[i + 1]) for i, w in enumerate(body[:-1])
                           if w == "rotate" and body[i + 1].isdigit()), 0)
            days = rotate * period
            maxage = next((int(body[i + 1]) for i, w in enumerate(body[:-1])
                           if w == "maxage" and body[i + 1].isdigit()), None)
            if maxage is not None:
                days = min(days, maxage)
            best = days if best is None else min(best, days)
    return best


def fact_rsyslog() -> dict:
    files = ["/etc/rsyslog.conf", *_conf_dir("/etc/rsyslog.d")]
    targets = []
    tls_targets = []
    queued_targets = []
    seen = []
    templates = {}
    receivers = []
    dynafiles = []
    module_tls = {}
    legacy_tls = False
    for path in files:
        text = _read_opt(path)
        if text is None:
            continue
        seen.append(path)
        for line in _lines(text):
            if re.match(r"\$DefaultNetstreamDriver\s+(gtls|ossl)\b", line, re.I):
                legacy_tls = True
            m = re.search(r"\s@@?(?:\([^)]*\))?([\w.\-:\[\]]+)", " " + line)
            if m and not line.startswith(("$", "module", "input", "action", "template")):
                target = m.group(1).split(":")[0]
                targets.append(target)
                if legacy_tls and "@@" in line:
                    tls_targets.append(target)
        for m in _RS_BLOCK.finditer(_rs_text(text)):
            kind, params = m.group(1).lower(), _rs_params(m.group(2))
            if kind == "template" and "name" in params:
                templates[params["name"]] = params.get("string", "")
            elif kind == "module" and params.get("load") == "imtcp":
                module_tls = params
            elif kind == "input" and params.get("type") == "imtcp":
                receivers.append(params)
            elif kind == "action" and params.get("type") == "omfwd" and params.get("target"):
                target = params["target"]
                targets.append(target)
                if (params.get("streamdriver", "").lower() in _RS_SECURE
                        and params.get("streamdrivermode") == "1"
                        and params.get("streamdriverauthmode", "anon").lower() != "anon"):
                    tls_targets.append(target)
                if (params.get("queue.type", "direct").lower() != "direct"
                        and params.get("queue.filename")):
                    queued_targets.append(target)
            elif kind == "action" and params.get("type") == "omfile" and params.get("dynafile"):
                dynafiles.append(params["dynafile"])
    tls_ports = []
    for params in receivers:
        def get(key: str, params: dict = params) -> str:
            return params.get(key) or module_tls.get(key) or ""
        if (get("streamdriver.name").lower() in _RS_SECURE and get("streamdriver.mode") == "1"
                and get("streamdriver.authmode").lower() not in ("", "anon")):
            tls_ports.append(_num(params.get("port", "")))
    # Where the received records are written: the static part of each dynaFile template.
    receive_dirs = sorted({templates[name].split("%")[0].rstrip("/") for name in dynafiles
                           if templates.get(name, "").startswith("/")})
    rotate_files = ["/etc/logrotate.conf", *_conf_dir("/etc/logrotate.d", "")]
    retention = [_logrotate_days(rotate_files, d) for d in receive_dirs]
    file_create_mode = None
    for path in files:
        for line in _lines(_read_opt(path) or ""):
            m = re.match(r"\$FileCreateMode\s+(0[0-7]{3})", line)
            if m:
                file_create_mode = m.group(1)
    return {"configured": bool(seen), "forward_targets": sorted(set(targets)),
            "forward_tls_targets": sorted(set(tls_targets)),
            "forward_disk_queue_targets": sorted(set(queued_targets)),
            "receiver_tls_ports": sorted(set(tls_ports), key=str),
            "receive_dirs": receive_dirs,
            "received_retention_days": (None if not retention or None in retention
                                        else min(retention)),
            "file_create_mode": file_create_mode,
            "auth_log_files": auth_log_files(
                [line for path in files for line in _lines(_read_opt(path) or "")]),
            "journald_persistent": _journald_persistent()}


AUTH_FACILITIES = ("auth", "authpriv")


def auth_log_files(lines: list[str]) -> list[str]:
    """Files a classic rsyslog selector line writes auth and authpriv messages to
    (`auth,authpriv.*  /var/log/auth.log`; `*.*` too; `authpriv.none` takes them out again)."""
    out = []
    for line in lines:
        m = re.match(r"([\w*,.;=!-]+)\s+-?(/\S+)$", line)
        if not m:
            continue
        covered: set[str] = set()
        for selector in m.group(1).split(";"):
            facilities, _, priority = selector.rpartition(".")
            names = set(facilities.split(",")) if facilities else set()
            if "*" in names:
                names |= set(AUTH_FACILITIES)
            names &= set(AUTH_FACILITIES)
            if priority == "none":
                covered -= names
            else:
                covered |= names
        if covered == set(AUTH_FACILITIES):
            out.append(m.group(2))
    return sorted(set(out))


def _journald_persistent() -> bool:
    """journald keeps records on disk: Storage=persistent, or auto with /var/log/journal."""
    storage = "auto"
    for path in ["/etc/systemd/journald.conf", *_conf_dir("/etc/systemd/journald.conf.d")]:
        for line in _lines(_read_opt(path) or ""):
            m = re.match(r"Storage\s*=\s*(\w+)", line)
            if m:
                storage = m.group(1).lower()
    return storage == "persistent" or (storage == "auto" and os.path.isdir("/var/log/journal"))


def fact_files() -> dict:
    result = {}
    for path in STAT_FILES:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            result[path] = {"exists": False}
            continue
        except OSError as exc:
            result[path] = {"error": f"{path}: {exc.strerror}"}
            continue
        result[path] = {"exists": True, "mode": f"{stat.S_IMODE(st.st_mode):04o}",
                        "owner": _user(st.st_uid), "group": _group(st.st_gid),
                        "is_dir": stat.S_ISDIR(st.st_mode)}
    return result


def _user(uid: int) -> str:
    try:
        import pwd
        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return str(uid)


def _group(gid: int) -> str:
    try:
        import grp
        return grp.getgrgid(gid).gr_name
    except (KeyError, ImportError):
        return str(gid)


def fact_sysctl() -> dict:
    result: dict[str, object] = {}
    for key in SYSCTL_KEYS:
        text = _read_opt("/proc/sys/" + key.replace(".", "/"))
        result[key] = None if text is None else _num(text.strip())
    return result


def fact_sysctl_access() -> dict:
    """Whether this host may change kernel parameters: /proc/sys is mounted read-only inside a
    container (the parameters belong to the machine's kernel, or to whoever made the namespace)."""
    read_only = bool(os.statvfs("/proc/sys").f_flag & os.ST_RDONLY)
    reason = ""
    if read_only:
        container = _container()
        reason = "/proc/sys is mounted read-only" + (
            f" (a {container} container: the machine that runs it sets these)" if container else "")
    return {"read_only": read_only, "reason": reason}


def _proc_net(path: str, listen_state: str | None) -> list[tuple[str, int]]:
    out = []
    text = _read_opt(path)
    if text is None:
        return out
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) < 4 or (listen_state and f[3] != listen_state):
            continue
        addr_hex, port_hex = f[1].split(":")
        port = int(port_hex, 16)
        if len(addr_hex) == 8:
            addr = socket.inet_ntop(socket.AF_INET, struct.pack("<I", int(addr_hex, 16)))
        else:
            raw = bytes.fromhex(addr_hex)
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
            addr = socket.inet_ntop(socket.AF_INET6, raw)
        out.append((addr, port))
    return out


def _loopback(addr: str) -> bool:
    return addr.startswith("127.") or addr in ("::1", "::ffff:127.0.0.1") or \
        addr.startswith("::ffff:127.")


def fact_listening() -> dict:
    if not os.path.exists("/proc/net/tcp"):
        raise FactError("/proc/net/tcp: not available")
    tcp = _proc_net("/proc/net/tcp", "0A") + _proc_net("/proc/net/tcp6", "0A")
    udp = _proc_net("/proc/net/udp", "07") + _proc_net("/proc/net/udp6", "07")
    return {
        "tcp": sorted({f"{a}:{p}" for a, p in tcp}),
        "tcp_ports": sorted({p for a, p in tcp if not _loopback(a)}),
        "udp_ports": sorted({p for a, p in udp if not _loopback(a)}),
        "high_risk_ports": sorted({p for a, p in tcp if not _loopback(a)} &
                                  {21, 23, 69, 111, 135, 137, 139, 445, 512, 513, 514, 2049,
                                   3389, 5900, 6000}),
    }


def fact_mounts() -> dict:
    mounts = {}
    for line in _read("/proc/mounts").splitlines():
        f = line.split()
        if len(f) >= 4:
            mounts[f[1]] = {"fstype": f[2], "options": f[3].split(",")}
    tmp = mounts.get("/tmp")
    cleanup = False
    for path in ["/usr/lib/tmpfiles.d/tmp.conf", *_conf_dir("/etc/tmpfiles.d")]:
        for line in _lines(_read_opt(path) or ""):
            f = line.split()
            if len(f) >= 2 and f[1] == "/tmp" and (f[0] in ("D", "D!") or
                                                   (len(f) >= 7 and f[6] not in ("-", ""))):
                cleanup = True
    return {
        "tmp_fstype": tmp["fstype"] if tmp else None,
        "tmp_options": tmp["options"] if tmp else [],
        "tmp_cleanup": cleanup or bool(tmp and tmp["fstype"] == "tmpfs"),
        "shm_options": mounts.get("/dev/shm", {}).get("options", []),
    }


def fact_limits() -> dict:
    hard_core_zero = False
    for path in ["/etc/security/limits.conf", *_conf_dir("/etc/security/limits.d")]:
        for line in _lines(_read_opt(path) or ""):
            f = line.split()
            if len(f) >= 4 and f[0] == "*" and f[1] == "hard" and f[2] == "core" and f[3] == "0":
                hard_core_zero = True
    storage = None
    for path in ["/etc/systemd/coredump.conf", *_conf_dir("/etc/systemd/coredump.conf.d")]:
        for line in _lines(_read_opt(path) or ""):
            m = re.match(r"Storage\s*=\s*(\w+)", line)
            if m:
                storage = m.group(1).lower()
    return {"hard_core_zero": hard_core_zero, "coredump_storage": storage}


def fact_sudo() -> dict:
    files = ["/etc/sudoers", *(p for p in _conf_dir("/etc/sudoers.d", "") if "." not in
                                os.path.basename(p) and not p.endswith("~"))]
    full: set[str] = set()
    nopasswd: set[str] = set()
    read = []
    for path in files:
        text = _read_opt(path)
        if text is None:
            continue
        read.append(path)
        for line in _lines(text):
            if line.startswith(("Defaults", "@include", "Cmnd_Alias", "User_Alias",
                                "Host_Alias", "Runas_Alias")):
                continue
            m = re.match(r"(\S+)\s+\S+\s*=\s*(\([^)]*\))?\s*(.*)", line)
            if not m:
                continue
            who, cmds = m.group(1), m.group(3)
            if re.search(r"(^|[:\s,])ALL\s*$", cmds):
                full.add(who)
                if "NOPASSWD" in cmds:
                    nopasswd.add(who)
    return {"full_access": sorted(full), "nopasswd_all": sorted(nopasswd), "files": read}


def fact_time() -> dict:
    servers: list[str] = []
    serves, local_clock = False, False
    for path in ["/etc/chrony/chrony.conf", *_conf_dir("/etc/chrony/conf.d"),
                 *_conf_dir("/etc/chrony/sources.d", ".sources")]:
        for line in _lines(_read_opt(path) or ""):
            f = line.split()
            if f[0] in ("server", "pool", "peer") and len(f) > 1:
                servers.append(f[1])
            # The site's own time source on an air-gapped node: it serves others (`allow`)
            # from its own clock (`local stratum N`).
            serves = serves or f[0] == "allow"
            local_clock = local_clock or f[0] == "local"
    for path in ["/etc/systemd/timesyncd.conf", *_conf_dir("/etc/systemd/timesyncd.conf.d")]:
        for line in _lines(_read_opt(path) or ""):
            m = re.match(r"NTP\s*=\s*(.*)", line)
            if m:
                servers.extend(m.group(1).split())
    return {"servers": sorted(set(servers)), "serves_others": serves,
            "local_clock": local_clock}


def fact_nftables() -> dict:
    if shutil.which("nft") is None:
        raise FactError("nft: command not found (nftables is not installed)")
    rc, out, err = _run(["nft", "-j", "list", "chains"])
    if rc != 0:
        raise FactError(f"nft list chains failed: {err.strip()}")
    chains = [c["chain"] for c in json.loads(out).get("nftables", []) if "chain" in c]
    policies = {c["hook"]: c.get("policy", "accept") for c in chains if "hook" in c}
    input_policies = sorted({c.get("policy", "accept") for c in chains
                             if c.get("hook") == "input"})
    return {
        "chains": len(chains),
        "input_policy": "drop" if input_policies == ["drop"] else
        (input_policies[0] if input_policies else None),
        "hooks": policies,
    }


def fact_aide() -> dict:
    conf = next((p for p in ("/etc/aide/aide.conf", "/etc/aide.conf") if os.path.exists(p)),
                None)
    db = next((p for p in ("/var/lib/aide/aide.db", "/var/lib/aide/aide.db.gz")
               if os.path.exists(p)), None)
    age = int((time.time() - os.stat(db).st_mtime) // 86400) if db else None
    return {"config": conf, "database": db, "database_age_days": age,
            "timer_enabled": _aide_timer_enabled(), "cron_entries": _aide_cron_entries()}


AIDE_TIMERS = ("dailyaidecheck.timer", "aidecheck.timer")


def _aide_timer_enabled() -> bool:
    """A unit file on disk schedules nothing: the timer must be enabled (systemctl is-enabled)."""
    if not os.path.isdir("/run/systemd/system") or shutil.which("systemctl") is None:
        return False
    for timer in AIDE_TIMERS:
        rc, out, _ = _run(["systemctl", "is-enabled", timer], timeout=5)
        if rc == 0 and out.strip() in ("enabled", "enabled-runtime", "static", "alias"):
            return True
    return False


def _aide_cron_entries() -> list[str]:
    """Cron files that run aide, when a cron daemon is installed. Debian's
    /etc/cron.daily/aide does nothing on a systemd host (it leaves the check to the timer), so it
    counts only where systemd is not running."""
    if not any(os.path.exists(b) for b in ("/usr/sbin/cron", "/usr/sbin/crond")):
        return []
    found = []
    tables = ["/etc/crontab", *_conf_dir("/etc/cron.d", ""),
              *_conf_dir("/var/spool/cron/crontabs", "")]
    for path in tables:
        if any(re.search(r"(^|[\s/])aide(init)?(\s|$)|dailyaidecheck", line)
               for line in _lines(_read_opt(path) or "")):
            found.append(path)
    systemd = os.path.isdir("/run/systemd/system")
    for period in ("hourly", "daily", "weekly"):
        for path in _conf_dir(f"/etc/cron.{period}", ""):
            if "aide" not in os.path.basename(path) or not os.access(path, os.X_OK):
                continue
            text = _read_opt(path) or ""
            if systemd and "/run/systemd/system" in text:
                continue
            found.append(path)
    return found


def fact_clamav() -> dict:
    newest = None
    try:
        for name in os.listdir("/var/lib/clamav"):
            if name.endswith((".cvd", ".cld")):
                mtime = os.stat(os.path.join("/var/lib/clamav", name)).st_mtime
                newest = mtime if newest is None else max(newest, mtime)
    except OSError:
        pass
    return {"signatures_age_days": int((time.time() - newest) // 86400) if newest else None}


def _pg_cluster(name: str, conf_paths: list[str], hba_path: str | None,
                data_dir: str | None = None) -> dict:
    conf: dict[str, str] = {}
    for path in conf_paths:
        for line in _lines(_read_opt(path) or ""):
            m = re.match(r"(\w+)\s*=?\s*'?([^'#]*)'?", line)
            if m:
                conf[m.group(1).lower()] = m.group(2).strip()
    # ALTER SYSTEM's file in the data directory overrides every other file.
    data_dir = conf.get("data_directory") or data_dir
    if data_dir:
        for line in _lines(_read_opt(os.path.join(data_dir, "postgresql.auto.conf")) or ""):
            m = re.match(r"(\w+)\s*=?\s*'?([^'#]*)'?", line)
            if m:
                conf[m.group(1).lower()] = m.group(2).strip()
    hba_path = conf.get("hba_file") or hba_path
    weak = set()
    for line in _lines(_read_opt(hba_path) or "" if hba_path else ""):
        f = line.split()
        if f and f[0] in ("local", "host", "hostssl", "hostnossl"):
            method = f[3] if f[0] == "local" else (f[4] if len(f) > 4 else "")
            if method in ("trust", "password", "md5"):
                weak.add(f"{f[0]} {method}" if f[0] != "local" or method != "trust"
                         else "local trust")
            if f[0] == "host" and method not in ("reject",) and "/" in f[3] and \
                    not f[3].startswith(("127.", "::1")):
                weak.add("host (not hostssl) for a remote address")
    return {
        "name": name,
        "password_encryption": conf.get("password_encryption", "scram-sha-256"),
        "ssl": conf.get("ssl", "off"),
        "log_connections": _pg_bool(conf.get("log_connections", "off")),
        "log_disconnections": _pg_bool(conf.get("log_disconnections", "off")),
        "log_statement": conf.get("log_statement", "none").lower(),
        "weak_hba": sorted(weak),
    }


def _pg_bool(value: str) -> str:
    """PostgreSQL's boolean spellings (on, true, yes, 1 and unique prefixes) as on / off."""
    v = value.strip().lower()
    if v in ("on", "1") or (v and ("true".startswith(v) or "yes".startswith(v))):
        return "on"
    return "off" if v in ("off", "0") or (v and ("false".startswith(v) or "no".startswith(v))) \
        else v


def fact_postgresql() -> dict:
    clusters = []
    base = "/etc/postgresql"
    if os.path.isdir(base):
        for version in sorted(os.listdir(base)):
            for name in sorted(os.listdir(os.path.join(base, version))):
                cdir = os.path.join(base, version, name)
                clusters.append(_pg_cluster(
                    f"{version}/{name}",
                    [os.path.join(cdir, "postgresql.conf"),
                     *_conf_dir(os.path.join(cdir, "conf.d"))],
                    os.path.join(cdir, "pg_hba.conf"),
                    os.path.join("/var/lib/postgresql", version, name)))
    # Under Patroni there is no /etc/postgresql cluster: Patroni writes postgresql.conf into
    # the data directory (it names hba_file) from its own configuration.
    data = "/var/lib/postgresql"
    if os.path.isdir("/etc/patroni") and os.path.isdir(data):
        for version in sorted(os.listdir(data)):
            vdir = os.path.join(data, version)
            if not os.path.isdir(vdir):
                continue
            for name in sorted(os.listdir(vdir)):
                conf = os.path.join(vdir, name, "postgresql.conf")
                if "patroni" in (_read_opt(conf) or "").lower():
                    clusters.append(_pg_cluster(f"{version}/{name} (patroni)", [conf],
                                                os.path.join(vdir, name, "pg_hba.conf"),
                                                os.path.join(vdir, name)))
    return {
        "installed": bool(clusters),
        "clusters": [c["name"] for c in clusters],
        "password_encryption": sorted({c["password_encryption"] for c in clusters}),
        "ssl": sorted({c["ssl"] for c in clusters}),
        "weak_hba": sorted({w for c in clusters for w in c["weak_hba"]}),
        "log_connections": sorted({c["log_connections"] for c in clusters}),
        "log_disconnections": sorted({c["log_disconnections"] for c in clusters}),
        "log_statement": sorted({c["log_statement"] for c in clusters}),
    }


def fact_nginx() -> dict:
    if not os.path.isdir("/etc/nginx"):
        return {"installed": False, "ssl_listen": False, "plain_listen": [], "ssl_protocols": [],
                "ssl_protocols_set": False}
    listens: list[str] = []
    protocols: set[str] = set()
    for root, _dirs, names in os.walk("/etc/nginx"):
        for n in names:
            if not n.endswith((".conf",)) and "sites-enabled" not in root:
                continue
            for line in _lines(_read_opt(os.path.join(root, n)) or ""):
                m = re.match(r"listen\s+([^;]+);", line)
                if m:
                    listens.append(m.group(1))
                m = re.match(r"ssl_protocols\s+([^;]+);", line)
                if m:
                    protocols.update(m.group(1).split())
    plain = [entry for entry in listens if "ssl" not in entry.split()
             and not re.search(r"(^|:)(80)$", entry.split()[0])]
    return {
        "installed": True,
        "ssl_listen": any("ssl" in entry.split() for entry in listens),
        "plain_listen": plain,
        # Unset, nginx offers its built-in default: Debian 12's nginx 1.22 offers TLSv1 and
        # TLSv1.1 too (only 1.23.4 and later default to TLSv1.2 TLSv1.3).
        "ssl_protocols": sorted(protocols) or list(NGINX_DEFAULT_PROTOCOLS),
        "ssl_protocols_set": bool(protocols),
    }


NGINX_DEFAULT_PROTOCOLS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")


def fact_pgbackrest() -> dict:
    conf_path = next((p for p in ("/etc/pgbackrest/pgbackrest.conf", "/etc/pgbackrest.conf")
                      if os.path.exists(p)), None)
    if conf_path is None:
        return {"configured": False, "repository_here": False, "newest_backup_hours": None,
                "encrypted": False}
    repo = None
    remote_repo = False
    for line in _lines(_read(conf_path)):
        m = re.match(r"repo1-path\s*=\s*(\S+)", line)
        if m:
            repo = m.group(1)
        if line.startswith("repo1-host"):
            remote_repo = True
    here = bool(repo) and not remote_repo and os.path.isdir(str(repo))
    newest = None
    if here:
        backup_root = os.path.join(str(repo), "backup")
        try:
            for stanza in os.listdir(backup_root):
                sdir = os.path.join(backup_root, stanza)
                for name in os.listdir(sdir):
                    if re.match(r"\d{8}-\d{6}F", name):
                        m = os.stat(os.path.join(sdir, name)).st_mtime
                        newest = m if newest is None else max(newest, m)
        except OSError:
            pass
    return {
        "configured": True,
        "repository_here": here,
        "newest_backup_hours": int((time.time() - newest) // 3600) if newest else None,
        "encrypted": "repo1-cipher-type" in (_read_opt(conf_path) or ""),
    }


def fact_swap() -> dict:
    """Active swap (/proc/swaps) and whether each lies on dm-crypt (directly, or below LVM)."""
    active, unencrypted = [], []
    for line in _read("/proc/swaps").splitlines()[1:]:
        f = line.split()
        if len(f) < 2:
            continue
        active.append(f[0])
        if not _on_dm_crypt(f[0], f[1]):
            unencrypted.append(f[0])
    return {"active": active, "unencrypted": unencrypted}


def _on_dm_crypt(path: str, kind: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    dev = st.st_rdev if kind == "partition" else st.st_dev
    return _block_is_crypt(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}", 0)


def _block_is_crypt(sysdir: str, depth: int) -> bool:
    if depth > 4:
        return False
    if (_read_opt(os.path.join(sysdir, "dm", "uuid")) or "").startswith("CRYPT-"):
        return True
    # a partition's parent, or the devices a device-mapper target sits on
    slaves = os.path.join(sysdir, "slaves")
    try:
        below = [os.path.join(slaves, n) for n in os.listdir(slaves)]
    except OSError:
        below = []
    return any(_block_is_crypt(os.path.realpath(b), depth + 1) for b in below)


ETCD_ENV = "/etc/default/etcd"


def fact_etcd() -> dict:
    """etcd's effective listeners and TLS from what its unit reads (Debian: /etc/default/etcd;
    a config file named by ETCD_CONFIG_FILE replaces every variable)."""
    if not os.path.exists("/usr/bin/etcd"):
        return {"installed": False, "config": None, "client_urls": [], "peer_urls": [],
                "plain_urls": [], "client_cert_auth": False, "peer_client_cert_auth": False,
                "cert_file": None, "peer_cert_file": None}
    env = {k: str(v).strip().strip('"').strip("'")
           for k, v in _kv_file(_read_opt(ETCD_ENV) or "", "=").items()}
    config = env.get("ETCD_CONFIG_FILE")
    if config:
        return parse_etcd_config(_read(config), config)
    return parse_etcd_env(env, ETCD_ENV)


def _etcd_result(where: str, get) -> dict:
    client = [u for u in get("listen-client-urls", "http://localhost:2379").split(",") if u]
    peer = [u for u in get("listen-peer-urls", "http://localhost:2380").split(",") if u]
    return {
        "installed": True,
        "config": where,
        "client_urls": client,
        "peer_urls": peer,
        "plain_urls": [u for u in client + peer if not u.strip().startswith(("https://",
                                                                              "unixs://"))],
        "client_cert_auth": get("client-cert-auth", "false").lower() == "true",
        "peer_client_cert_auth": get("peer-client-cert-auth", "false").lower() == "true",
        "cert_file": get("cert-file", "") or None,
        "peer_cert_file": get("peer-cert-file", "") or None,
    }


def parse_etcd_env(env: dict[str, str], where: str) -> dict:
    return _etcd_result(where, lambda key, default: env.get(
        "ETCD_" + key.upper().replace("-", "_"), default))


def parse_etcd_config(text: str, where: str) -> dict:
    """etcd's YAML config: top-level URL keys, and the two transport-security blocks."""
    values: dict[str, str] = {}
    block = ""
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        m = re.match(r"(\s*)([\w-]+):\s*(.*?)\s*$", raw)
        if not m:
            continue
        indent, key, value = m.group(1), m.group(2), m.group(3).strip("'\"")
        if not indent:
            block = key if not value else ""
            if value:
                values[key] = value
        elif block in ("client-transport-security", "peer-transport-security") and value:
            values[("peer-" if block.startswith("peer") else "") + key] = value
    return _etcd_result(where, lambda key, default: values.get(key, default))


PATRONI_CONFIGS = ("/etc/patroni/config.yml", "/etc/patroni/patroni.yml", "/etc/patroni/config.d")


def fact_patroni() -> dict:
    """Patroni's REST API (8008) listener and TLS from its configuration: a file, or a directory
    whose *.yml files Patroni merges in name order (later ones win)."""
    installed = shutil.which("patroni") is not None or os.path.exists("/usr/bin/patroni")
    files = []
    for path in PATRONI_CONFIGS:
        if os.path.isdir(path):
            files += _conf_dir(path, ".yml") + _conf_dir(path, ".yaml")
        elif os.path.isfile(path):
            files.append(path)
    rest: dict[str, str] = {}
    for path in files:
        rest.update(patroni_restapi(_read(path)))
    return {
        "installed": installed,
        "config_files": files,
        "rest_listen": rest.get("listen"),
        "rest_certfile": rest.get("certfile"),
        "rest_keyfile": rest.get("keyfile"),
    }


def patroni_restapi(text: str) -> dict[str, str]:
    """The scalar keys of the top-level `restapi:` block of a Patroni YAML file."""
    out: dict[str, str] = {}
    inside, depth = False, None
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        indent = len(raw) - len(raw.lstrip())
        if indent == 0:
            inside = raw.split(":")[0].strip() == "restapi"
            depth = None
            continue
        if not inside:
            continue
        depth = indent if depth is None else depth
        m = re.match(r"\s*([\w-]+):\s*(.*?)\s*$", raw)
        if m and indent == depth and m.group(2):
            out[m.group(1)] = m.group(2).strip("'\"")
    return out


def fact_walk() -> dict:
    """One bounded walk for every check that looks at the filesystem."""
    deadline = time.monotonic() + WALK_SECONDS
    world_writable: list[str] = []
    no_sticky: list[str] = []
    dumps: list[str] = []
    complete = True

    def walk(top: str, depth: int, visit) -> None:
        nonlocal complete
        stack = [(top, 0)]
        while stack:
            if time.monotonic() > deadline:
                complete = False
                return
            path, d = stack.pop()
            try:
                with os.scandir(path) as it:
                    for entry in it:
                        try:
                            if entry.is_symlink():
                                continue
                            st = entry.stat(follow_symlinks=False)
                        except OSError:
                            continue
                        visit(entry.path, st)
                        if stat.S_ISDIR(st.st_mode) and d < depth:
                            stack.append((entry.path, d + 1))
            except OSError:
                continue

    def system_visit(path: str, st: os.stat_result) -> None:
        if st.st_mode & stat.S_IWOTH:
            if stat.S_ISREG(st.st_mode) and len(world_writable) < WALK_MAX_HITS:
                world_writable.append(path)
            elif stat.S_ISDIR(st.st_mode) and not st.st_mode & stat.S_ISVTX and \
                    len(no_sticky) < WALK_MAX_HITS:
                no_sticky.append(path)

    def home_visit(path: str, st: os.stat_result) -> None:
        if stat.S_ISREG(st.st_mode) and st.st_mode & stat.S_IROTH and \
                path.lower().endswith(DUMP_SUFFIXES) and len(dumps) < WALK_MAX_HITS:
            dumps.append(path)

    for top in SYSTEM_DIRS:
        walk(top, 12, system_visit)
    homes = ["/root", "/srv", "/tmp"]
    with contextlib.suppress(OSError):
        homes += [os.path.join("/home", n) for n in os.listdir("/home")]
    for top in homes:
        walk(top, 4, home_visit)
    return {
        "complete": complete,
        # What checks that need every file read: true, or why not (then they are errors
        # unless a file already found decides them).
        "covered": True if complete else {
            "error": f"the filesystem walk stopped at its {WALK_SECONDS:g} s bound before "
                     "seeing every file: a clean result would not prove there is none"},
        "seconds_bound": WALK_SECONDS,
        "world_writable_files": sorted(world_writable),
        "world_writable_dirs_without_sticky": sorted(no_sticky),
        "world_readable_dumps": sorted(dumps),
    }


FACTS = {
    "system": fact_system,
    "accounts": fact_accounts,
    "login_defs": fact_login_defs,
    "pam": fact_pam,
    "pwquality": fact_pwquality,
    "faillock": fact_faillock,
    "shell": fact_shell,
    "sshd": fact_sshd,
    "packages": fact_packages,
    "services": fact_services,
    "processes": fact_processes,
    "audit": fact_audit,
    "auditd_conf": fact_auditd_conf,
    "rsyslog": fact_rsyslog,
    "files": fact_files,
    "sysctl": fact_sysctl,
    "sysctl_access": fact_sysctl_access,
    "listening": fact_listening,
    "mounts": fact_mounts,
    "limits": fact_limits,
    "sudo": fact_sudo,
    "time": fact_time,
    "nftables": fact_nftables,
    "aide": fact_aide,
    "clamav": fact_clamav,
    "postgresql": fact_postgresql,
    "nginx": fact_nginx,
    "pgbackrest": fact_pgbackrest,
    "swap": fact_swap,
    "etcd": fact_etcd,
    "patroni": fact_patroni,
    "walk": fact_walk,
}


def collect(names: list[str] | None = None) -> dict:
    started = time.monotonic()
    facts: dict[str, object] = {}
    for name in names or list(FACTS):
        try:
            facts[name] = FACTS[name]()
        except FactError as exc:
            facts[name] = {"error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - one broken fact must not end the scan
            facts[name] = {"error": f"collector bug: {type(exc).__name__}: {exc}"}
    return {
        "schema": SCHEMA,
        "host": socket.gethostname(),
        "collected_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(time.monotonic() - started, 3),
        "facts": facts,
    }


def main() -> None:
    json.dump(collect(sys.argv[1:] or None), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
