#!/usr/bin/python3
"""What the hardening role reads from a host before it decides what to change (pyinfra's
facts, apart from its operations): one module call per concern that reads, instead of one
task per file or command. Each read is a task on every host of every apply, and a no-change
apply is mostly such reads; the changes stay ordinary Ansible tasks.

Read only: it changes nothing, so it runs as it is in check mode.
"""

from __future__ import annotations

import os
import re
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: opsctl_hardening_facts
short_description: Read the host state the hardening role decides on
description:
  - Reads, never changes. Each section is one concern's reads; the result has one key per
    section asked for.
options:
  sections:
    description: What to read.
    type: list
    elements: str
    required: true
    choices: [sysctl, first_upgrade, sshd_dropins, pam_profiles, boot, cron_grub,
              world_writable, accounts, audit]
  sysctl:
    description: The wanted kernel parameters (name to value), for C(sysctl).
    type: dict
    default: {}
  first_upgrade_marker:
    description: The file whose presence says the host took the mirror's updates once.
    type: path
  sshd_dropin:
    description: The role's own sshd drop-in; C(sshd_dropins) lists those sorting before it.
    type: path
  inactive_days:
    description: The inactivity limit people's accounts must have, for C(accounts).
    type: int
    default: 35
  root:
    description: Where the host's filesystem starts (tests read a tree of files).
    type: path
    default: /
"""

RETURN = r"""
sysctl:
  description: state (every key as found), to_set (writable, differing), skipped (read-only,
    differing).
  type: dict
  returned: when asked
first_upgrade: {description: whether the marker exists, type: bool, returned: when asked}
sshd_dropins:
  description: the drop-ins in sshd_config.d sorting before the role's own.
  type: list
  returned: when asked
pam_profiles:
  description: the PAM profiles pam-auth-update has enabled.
  type: list
  returned: when asked
boot:
  description: container (systemd-detect-virt --container, none outside one) and update_grub
    (whether the tool exists).
  type: dict
  returned: when asked
cron_grub:
  description: cron's and GRUB's configuration that exists, each path with isdir.
  type: list
  returned: when asked
world_writable:
  description: "'f PATH' (a world-writable file), 'd PATH' (a world-writable directory
    without the sticky bit)."
  type: list
  returned: when asked
accounts:
  description: "account names: with_password, empty, shell, unlocked, inactive."
  type: dict
  returned: when asked
audit:
  description: kernel_available, immutable, reason (why it is not available).
  type: dict
  returned: when asked
"""

CRON_GRUB = ("/etc/crontab", "/etc/cron.d", "/etc/cron.hourly", "/etc/cron.daily",
             "/etc/cron.weekly", "/etc/cron.monthly", "/boot/grub/grub.cfg")
NO_LOGIN = re.compile(r"(nologin|false|sync|shutdown|halt)$")
# Wider than what the collector checks (security/collector/files.py walks the system
# directories): the root filesystem, pseudo filesystems pruned, bounded in time.
WALK_SECONDS = 60


def _at(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def _table(root: str, path: str) -> list[list[str]]:
    with open(_at(root, path), encoding="utf-8", errors="replace") as fh:
        return [line.rstrip("\n").split(":") for line in fh if line.strip()]


def sysctl(wanted: dict[str, Any], root: str = "/") -> dict[str, Any]:
    """Which parameters differ from the wanted value, split by whether this host may set them
    (inside a container /proc/sys is read-only but for the namespace's own net.*)."""
    state: dict[str, dict[str, Any]] = {}
    to_set: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for key, value in wanted.items():
        path = _at(root, "/proc/sys/" + key.replace(".", "/"))
        if not os.path.exists(path):
            state[key] = {"writable": False, "value": None, "reason": "not in this kernel"}
        else:
            with open(path, encoding="utf-8") as fh:
                now = fh.read().strip()
            writable = os.access(path, os.W_OK)
            reason = "" if writable else "read-only here: " + (
                "this kernel namespace does not own it"
                if os.statvfs(path).f_flag & os.ST_RDONLY else "permission denied")
            state[key] = {"writable": writable, "value": now, "reason": reason}
        if state[key]["value"] != str(value):
            entry = {"key": key, "value": value, "now": state[key]["value"],
                     "reason": state[key]["reason"]}
            (to_set if state[key]["writable"] else skipped).append(entry)
    return {"state": state, "to_set": to_set, "skipped": skipped}


def sshd_dropins(ours: str, root: str = "/") -> list[str]:
    """sshd keeps the first value it reads: drop-ins sorting before ours win over it."""
    directory = os.path.dirname(ours)
    try:
        names = os.listdir(_at(root, directory))
    except FileNotFoundError:
        return []
    return sorted(path for path in (os.path.join(directory, n) for n in names
                                    if n.endswith(".conf"))
                  if path < ours and os.path.isfile(_at(root, path)))


def pam_profiles(debconf_show: str) -> list[str]:
    """The profiles in `debconf-show libpam-runtime`'s answer."""
    found = re.search(r"libpam-runtime/profiles:\s*(.*)", debconf_show)
    return [p.strip() for p in found.group(1).split(",") if p.strip()] if found else []


def cron_grub(root: str = "/") -> list[dict[str, Any]]:
    return [{"path": path, "isdir": os.path.isdir(_at(root, path))}
            for path in CRON_GRUB if os.path.exists(_at(root, path))]


def accounts(inactive_days: int, root: str = "/") -> dict[str, list[str]]:
    """Account names only: no hash leaves the host."""
    shadow = _table(root, "/etc/shadow")
    passwd = _table(root, "/etc/passwd")
    password = {f[0]: f[1] if len(f) > 1 else "" for f in shadow}

    def has_password(name: str) -> bool:
        pw = password.get(name, "")
        return pw != "" and not pw.startswith(("!", "*"))

    def uid(f: list[str]) -> int:
        return int(f[2]) if len(f) > 2 and f[2].isdigit() else -1

    def inactive_ok(f: list[str]) -> bool:
        field = f[6] if len(f) > 6 else ""
        if field == "":
            return False
        days = int(field) if field.lstrip("-").isdigit() else 0
        return 0 <= days <= inactive_days

    system = [f for f in passwd if 0 < uid(f) < 1000]
    people = {f[0] for f in passwd if 1000 <= uid(f) < 65534}
    return {
        "with_password": [f[0] for f in shadow if has_password(f[0])],
        "empty": [f[0] for f in shadow if len(f) > 1 and f[1] == ""],
        "shell": [f[0] for f in system
                  if not NO_LOGIN.search(f[6] if len(f) > 6 else "")],
        "unlocked": [f[0] for f in system if has_password(f[0])],
        "inactive": [f[0] for f in shadow
                     if f[0] in people and has_password(f[0]) and not inactive_ok(f)],
    }


def audit(rc: int, stdout: str, stderr: str) -> dict[str, Any]:
    """Kernel audit is not namespaced: a refusal of `auditctl -s` means auditd cannot run here."""
    first = next((line.strip() for line in stderr.splitlines() if line.strip()), "no answer")
    return {"kernel_available": rc == 0,
            "immutable": rc == 0 and "enabled 2" in stdout,
            "reason": f"kernel audit is not available to this host (auditctl -s: {first})"}


def world_writable(module: Any) -> list[str]:
    argv = ["timeout", str(WALK_SECONDS), "find", "/", "-xdev",
            "(", "-path", "/proc", "-o", "-path", "/sys", "-o", "-path", "/dev",
            "-o", "-path", "/run", ")", "-prune",
            "-o", "(", "-type", "f", "-perm", "-0002", "-printf", "f %p\\n", ")",
            "-o", "(", "-type", "d", "-perm", "-0002", "!", "-perm", "-1000",
            "-printf", "d %p\\n", ")"]
    rc, out, err = module.run_command(argv)
    if rc not in (0, 124):  # 124: the walk ran out of time; what it found still counts
        module.fail_json(msg=f"find of world-writable paths failed (rc {rc}): {err.strip()}")
    return sorted(line for line in out.splitlines() if line)


def _answer(module: Any, command: str, *args: str) -> str:
    """What a command printed, whatever its exit code; nothing when it is not installed."""
    found = module.get_bin_path(command)
    return "" if found is None else module.run_command([found, *args])[1].strip()


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "sections": {"type": "list", "elements": "str", "required": True,
                         "choices": ["sysctl", "first_upgrade", "sshd_dropins",
                                     "pam_profiles", "boot", "cron_grub", "world_writable",
                                     "accounts", "audit"]},
            "sysctl": {"type": "dict", "default": {}},
            "first_upgrade_marker": {"type": "path"},
            "sshd_dropin": {"type": "path"},
            "inactive_days": {"type": "int", "default": 35},
            "root": {"type": "path", "default": "/"},
        },
        supports_check_mode=True,
    )
    p = module.params
    root = p["root"]
    out: dict[str, Any] = {"changed": False}
    for section in p["sections"]:
        if section == "sysctl":
            out["sysctl"] = sysctl(p["sysctl"], root)
        elif section == "first_upgrade":
            out["first_upgrade"] = os.path.exists(_at(root, p["first_upgrade_marker"]))
        elif section == "sshd_dropins":
            out["sshd_dropins"] = sshd_dropins(p["sshd_dropin"], root)
        elif section == "pam_profiles":
            out["pam_profiles"] = pam_profiles(_answer(module, "debconf-show", "libpam-runtime"))
        elif section == "boot":
            # "none" outside a container; nothing when it cannot tell (then no boot loader change)
            out["boot"] = {"container": _answer(module, "systemd-detect-virt", "--container"),
                           "update_grub": os.path.exists(_at(root, "/usr/sbin/update-grub"))}
        elif section == "cron_grub":
            out["cron_grub"] = cron_grub(root)
        elif section == "world_writable":
            out["world_writable"] = world_writable(module)
        elif section == "accounts":
            out["accounts"] = accounts(p["inactive_days"], root)
        elif section == "audit":
            auditctl = module.get_bin_path("auditctl")
            if auditctl is None:
                out["audit"] = audit(127, "", "auditctl is not installed")
            else:
                out["audit"] = audit(*module.run_command([auditctl, "-s"]))
    module.exit_json(**out)


if __name__ == "__main__":
    main()
