"""Accounts and what they may do: passwd/shadow/group, login.defs, the login shell's idle
timeout and umask, sudo rights.

Secrets never leave the host: from /etc/shadow only derived facts (which accounts have an
empty password, which are locked, password ages, hash schemes) are reported, never a hash.
"""

from __future__ import annotations

import os
import re
import time

from security.collector.base import conf_dir, kv_file, lines, read, read_files, read_opt

# Account names that suggest a shared or generic account (8.1.4.2 c).
GENERIC_NAMES = ("guest", "test", "temp", "share", "shared", "user", "demo", "public")
NOLOGIN = ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false", "/usr/bin/false", "/bin/sync",
           "")
# crypt(5) prefixes → scheme names. The collector reports the name, never the hash.
HASH_PREFIXES = {
    "1": "md5", "2a": "bcrypt", "2b": "bcrypt", "2x": "bcrypt", "2y": "bcrypt",
    "3": "nthash", "5": "sha256", "6": "sha512", "7": "scrypt", "y": "yescrypt",
    "gy": "gost-yescrypt", "md5": "sunmd5", "sha1": "sha1crypt",
}
# Shadow fields (shadow(5)) by index.
SHADOW_HASH, SHADOW_CHANGED, SHADOW_MIN, SHADOW_MAX, SHADOW_WARN, SHADOW_INACTIVE = range(1, 7)
NEVER = 99999  # shadow's "no limit" in days


# ---------------------------------------------------------------- accounts

def parse_passwd(text: str) -> list[dict]:
    rows = []
    for line in text.splitlines():
        f = line.split(":")
        if len(f) >= 7:
            rows.append({"name": f[0], "uid": int(f[2]), "gid": int(f[3]), "home": f[5],
                         "shell": f[6]})
    return rows


def parse_shadow(text: str) -> dict[str, list[str]]:
    shadow: dict[str, list[str]] = {}
    for line in text.splitlines():
        f = line.split(":")
        if len(f) >= 8:
            shadow[f[0]] = f
    return shadow


def parse_group(text: str) -> list[tuple[str, str, list[str]]]:
    """(name, gid, members) in file order, duplicates kept."""
    rows = []
    for line in text.splitlines():
        f = line.split(":")
        if len(f) >= 4:
            rows.append((f[0], f[2].strip(), [m for m in f[3].split(",") if m]))
    return rows


def is_login(account: dict) -> bool:
    return account["shell"] not in NOLOGIN


def read_authorized_keys(home: str) -> list[str] | None:
    """A home's authorized keys (comments and blanks out); None when there is no readable file."""
    try:
        with open(os.path.join(home, ".ssh", "authorized_keys"), encoding="utf-8") as f:
            return [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
    except OSError:
        return None


def gather_accounts() -> dict:
    passwd_text = read("/etc/passwd")
    login = [p for p in parse_passwd(passwd_text) if is_login(p)]
    read_data = {
        "passwd": passwd_text,
        "shadow": read("/etc/shadow"),
        "group": read("/etc/group"),
        "useradd": read_opt("/etc/default/useradd"),
        "today": int(time.time() // 86400),
    }
    # Only what the parse asks about: system accounts' keys, people's home directories.
    read_data["authorized_keys"] = {p["home"]: read_authorized_keys(p["home"])
                                    for p in login if 0 < p["uid"] < 1000}
    read_data["home_is_dir"] = {p["home"]: os.path.isdir(p["home"])
                                for p in login if p["uid"] >= 1000}
    return read_data


def ssh_restricted(keys: list[str] | None) -> bool:
    """Has authorized keys, and every one carries a from= option (no other way in)."""
    return bool(keys) and all(k.startswith("from=") or ",from=" in k.split(" ", 1)[0]
                              for k in keys or [])


def hash_state(shadow: dict[str, list[str]], name: str) -> str:
    entry = shadow.get(name)
    if entry is None:
        return "missing"
    h = entry[SHADOW_HASH]
    if h == "":
        return "empty"
    if h.startswith(("!", "*")):
        return "locked"
    return "set"


def shadow_days(shadow: dict[str, list[str]], name: str, idx: int) -> int | None:
    entry = shadow.get(name)
    if entry is None or not entry[idx].strip().lstrip("-").isdigit():
        return None
    return int(entry[idx])


def inactive_days(shadow: dict[str, list[str]], name: str) -> int:
    """Days after expiry until the account is disabled; unset (or -1) never: NEVER."""
    days = shadow_days(shadow, name, SHADOW_INACTIVE)
    return days if days is not None and days >= 0 else NEVER


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


def duplicates(values: list) -> list:
    seen: dict = {}
    for value in values:
        seen[value] = seen.get(value, 0) + 1
    return sorted(v for v, n in seen.items() if n > 1)


def password_ages(shadow: dict[str, list[str]], with_password: list[str], today: int) -> dict:
    def ages(idx: int) -> list[int | None]:
        return [shadow_days(shadow, n, idx) for n in with_password]

    return {
        "password_max_days_max": max((d if d is not None else NEVER
                                      for d in ages(SHADOW_MAX)), default=None),
        "password_min_days_min": min((d if d is not None else 0 for d in ages(SHADOW_MIN)),
                                     default=None),
        "password_warn_days_min": min((d if d is not None else 0 for d in ages(SHADOW_WARN)),
                                      default=None),
        "password_oldest_change_days": max((today - d for d in ages(SHADOW_CHANGED)
                                            if d is not None), default=None),
        "password_expires": password_expiry_days(shadow, with_password),
    }


def password_expiry_days(shadow: dict[str, list[str]], with_password: list[str]) -> dict:
    """The day (since 1970-01-01) each password stops working without a change: its last
    change plus its maximum age; accounts whose password never expires are left out."""
    out = {}
    for name in with_password:
        changed = shadow_days(shadow, name, SHADOW_CHANGED)
        max_days = shadow_days(shadow, name, SHADOW_MAX)
        if changed is not None and max_days is not None and 0 <= max_days < NEVER:
            out[name] = changed + max_days
    return out


def duplicate_gids(groups: list[tuple[str, str, list[str]]]) -> list[int]:
    """GIDs that more than one group line names (numeric GIDs only)."""
    return sorted(int(g) for g in duplicates([gid for _name, gid, _m in groups]) if g.isdigit())


def group_facts(groups: list[tuple[str, str, list[str]]], passwd: list[dict]) -> dict:
    members = {name: m for name, _gid, m in groups}  # a later duplicate line wins
    return {
        "groups": sorted(members),
        "group_members": {g: m for g, m in sorted(members.items()) if m},
        "duplicate_gids": duplicate_gids(groups),
        "duplicate_group_names": duplicates([name for name, _gid, _m in groups]),
        "gid0_groups": sorted(name for name, gid, _m in groups if gid == "0"),
        "gid0_primary_accounts": sorted(p["name"] for p in passwd if p["gid"] == 0),
    }


def system_login_accounts(login: list[dict], keys: dict[str, list[str] | None],
                          restricted: bool) -> list[str]:
    """System accounts (UID 1-999) with a login shell, split by whether SSH binds every key
    they accept to an address."""
    return sorted(p["name"] for p in login if 0 < p["uid"] < 1000
                  and ssh_restricted(keys.get(p["home"])) == restricted)


def parse_accounts(read_data: dict) -> dict:
    passwd = parse_passwd(read_data["passwd"])
    shadow = parse_shadow(read_data["shadow"])
    keys = read_data["authorized_keys"]

    def state(name: str) -> str:
        return hash_state(shadow, name)

    login = [p for p in passwd if is_login(p)]
    with_password = [p["name"] for p in passwd if state(p["name"]) == "set"]
    # People's accounts (UID 1000 and up, not nobody) that log in with a password.
    human = sorted(p["name"] for p in passwd if 1000 <= p["uid"] < 65534
                   and state(p["name"]) == "set")
    inactive_default = kv_file(read_data["useradd"] or "", "=").get("INACTIVE")
    return {
        "count": len(passwd),
        "duplicate_uids": duplicates([p["uid"] for p in passwd]),
        "duplicate_names": duplicates([p["name"] for p in passwd]),
        "uid0_accounts": sorted(p["name"] for p in passwd if p["uid"] == 0),
        "empty_password": sorted(p["name"] for p in passwd if state(p["name"]) == "empty"),
        "missing_shadow_entry": sorted(p["name"] for p in passwd
                                       if state(p["name"]) == "missing"),
        "login_accounts": sorted(p["name"] for p in login),
        "system_accounts_with_shell": system_login_accounts(login, keys, restricted=False),
        # Service accounts that must keep a shell for one peer's SSH (pgBackRest between the
        # database and repository hosts): every key they accept is bound to an address.
        "system_accounts_ssh_restricted": system_login_accounts(login, keys, restricted=True),
        "system_accounts_unlocked": sorted(
            p["name"] for p in passwd if 0 < p["uid"] < 1000 and state(p["name"]) == "set"),
        "root_password_state": state("root"),
        "generic_login_accounts": sorted(p["name"] for p in login if p["name"] in GENERIC_NAMES),
        "login_accounts_without_home": sorted(
            p["name"] for p in login
            if p["uid"] >= 1000 and not read_data["home_is_dir"].get(p["home"])),
        "password_accounts": sorted(with_password),
        **password_ages(shadow, with_password, read_data["today"]),
        **group_facts(parse_group(read_data["group"]), passwd),
        # Only the scheme each usable password is hashed with: never the hash itself.
        "password_hash_by_account": {n: hash_scheme(shadow[n][SHADOW_HASH])
                                     for n in sorted(with_password)},
        "password_hash_schemes": sorted({hash_scheme(shadow[n][SHADOW_HASH])
                                         for n in with_password}),
        # /etc/default/useradd INACTIVE: unset is useradd's -1 (never disabled).
        "inactive_default": inactive_default if isinstance(inactive_default, int) else -1,
        "human_password_accounts": human,
        "human_inactive_days_max": max((inactive_days(shadow, n) for n in human), default=None),
    }


def fact_accounts() -> dict:
    return parse_accounts(gather_accounts())


# ---------------------------------------------------------------- login.defs

def gather_login_defs() -> str:
    return read("/etc/login.defs")


def parse_login_defs(text: str) -> dict:
    return kv_file(text)


def fact_login_defs() -> dict:
    return parse_login_defs(gather_login_defs())


# ---------------------------------------------------------------- login shells

def gather_shell() -> dict[str, str | None]:
    return read_files(["/etc/profile", "/etc/bash.bashrc", *conf_dir("/etc/profile.d", ".sh")])


TMOUT_READONLY = re.compile(r"\breadonly\s+TMOUT\b|\bdeclare\s+-[a-z]*r[a-z]*\s+TMOUT"
                            r"|\btypeset\s+-[a-z]*r[a-z]*\s+TMOUT")


def parse_shell(files: dict[str, str | None]) -> dict:
    """Idle timeout (TMOUT) and umask as login shells set them."""
    tmout: list[int] = []
    readonly = False
    umasks: list[str] = []
    where = []
    for path, text in files.items():
        for line in lines(text or ""):
            m = re.search(r"\bTMOUT=(\d+)", line)
            if m:
                tmout.append(int(m.group(1)))
                where.append(path)
            readonly = readonly or bool(TMOUT_READONLY.search(line))
            m = re.match(r"umask\s+(0?[0-7]{3})\b", line)
            if m:
                umasks.append(m.group(1).rjust(4, "0"))
    return {
        "tmout": min(tmout) if tmout else None,
        "tmout_readonly": readonly,
        "tmout_sources": sorted(set(where)),
        "profile_umask": umasks[-1] if umasks else None,
    }


def fact_shell() -> dict:
    return parse_shell(gather_shell())


# ---------------------------------------------------------------- sudo

SUDO_NOT_A_GRANT = ("Defaults", "@include", "Cmnd_Alias", "User_Alias", "Host_Alias",
                    "Runas_Alias")


def gather_sudo() -> dict[str, str | None]:
    # sudo skips files in sudoers.d whose name has a dot or ends in ~ (editor leftovers).
    return read_files(["/etc/sudoers", *(p for p in conf_dir("/etc/sudoers.d", "")
                                         if "." not in os.path.basename(p)
                                         and not p.endswith("~"))])


def parse_sudo(files: dict[str, str | None]) -> dict:
    full: set[str] = set()
    nopasswd: set[str] = set()
    for text in files.values():
        for line in lines(text or ""):
            if line.startswith(SUDO_NOT_A_GRANT):
                continue
            m = re.match(r"(\S+)\s+\S+\s*=\s*(\([^)]*\))?\s*(.*)", line)
            if not m:
                continue
            who, cmds = m.group(1), m.group(3)
            if re.search(r"(^|[:\s,])ALL\s*$", cmds):
                full.add(who)
                if "NOPASSWD" in cmds:
                    nopasswd.add(who)
    return {"full_access": sorted(full), "nopasswd_all": sorted(nopasswd),
            "files": [path for path, text in files.items() if text is not None]}


def fact_sudo() -> dict:
    return parse_sudo(gather_sudo())
