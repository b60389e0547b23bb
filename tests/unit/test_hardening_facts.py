"""The hardening role's reads (roles/hardening/library/opsctl_hardening_facts.py), run here against
this machine's own /proc/sys and against trees of files: what a no-change apply loops over must
be exactly what differs, and account names only leave the host."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

MODULE = (Path(__file__).resolve().parents[2] / "roles" / "hardening" / "library"
          / "opsctl_hardening_facts.py")


@pytest.fixture(scope="module")
def facts() -> ModuleType:
    spec = importlib.util.spec_from_file_location("opsctl_hardening_facts", MODULE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_only_differing_parameters_are_handed_on_each_to_its_list(facts: ModuleType) -> None:
    now = Path("/proc/sys/kernel/randomize_va_space").read_text().strip()
    other = "1" if now != "1" else "2"
    found = facts.sysctl({"kernel.randomize_va_space": int(now), "net.ipv4.tcp_syncookies": 7,
                          "kernel.no_such_parameter": 1})

    assert set(found["state"]) == {"kernel.randomize_va_space", "net.ipv4.tcp_syncookies",
                                   "kernel.no_such_parameter"}
    assert found["state"]["kernel.randomize_va_space"]["value"] == now
    differing = {e["key"]: e for e in found["to_set"] + found["skipped"]}
    assert "kernel.randomize_va_space" not in differing  # as wanted: costs nothing
    assert differing["net.ipv4.tcp_syncookies"]["value"] == 7  # the wanted value, not the host's
    assert differing["net.ipv4.tcp_syncookies"]["now"] != "7"
    missing = differing["kernel.no_such_parameter"]
    assert missing in found["skipped"] and missing["reason"] == "not in this kernel"
    writable = os.access("/proc/sys/net/ipv4/tcp_syncookies", os.W_OK)
    assert (differing["net.ipv4.tcp_syncookies"] in found["to_set"]) is writable

    again = facts.sysctl({"kernel.randomize_va_space": int(other)})
    [entry] = again["to_set"] + again["skipped"]
    assert (entry["key"], entry["value"], entry["now"]) == ("kernel.randomize_va_space",
                                                            int(other), now)


def _tree(root: Path, files: dict[str, str]) -> str:
    for name, text in files.items():
        path = root / name.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(root)


PASSWD = """root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
sync:x:4:65534:sync:/bin:/bin/sync
games:x:5:60:games:/usr/games:/bin/sh
postgres:x:105:110::/var/lib/postgresql:/bin/bash
ops:x:1000:1000::/home/ops:/bin/bash
clerk:x:1001:1001::/home/clerk:/bin/bash
ghost:x:1002:1002::/home/ghost:/bin/bash
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
"""
SHADOW = """root:$6$r$hash:19000:0:99999:7:::
daemon:*:19000:0:99999:7:::
sync:*:19000:0:99999:7:::
games:$6$g$hash:19000:0:99999:7:::
postgres:!:19000:::::
ops:$6$o$hash:19000:7:90:7:35::
clerk:$6$c$hash:19000:7:90:7:::
ghost::19000:7:90:7:400::
nobody:*:19000:0:99999:7:::
"""


def test_accounts_are_sorted_by_what_the_role_fixes_names_only(facts: ModuleType,
                                                                tmp_path: Path) -> None:
    root = _tree(tmp_path, {"/etc/passwd": PASSWD, "/etc/shadow": SHADOW})
    found = facts.accounts(35, root)
    assert found == {
        "with_password": ["root", "games", "ops", "clerk"],
        "empty": ["ghost"],
        # uid 1-999 with a shell that logs in: games and postgres (sync's /bin/sync is fine)
        "shell": ["games", "postgres"],
        "unlocked": ["games"],
        # people (uid 1000-65533) with a password and no inactivity limit of at most 35 days:
        # clerk has none; ops has 35; ghost has no password (locked by the empty-password fix)
        "inactive": ["clerk"],
    }
    assert not any("$" in name for names in found.values() for name in names)
    assert facts.accounts(30, root)["inactive"] == ["ops", "clerk"]


def test_only_the_sshd_drop_ins_that_sort_before_ours_are_named(facts: ModuleType,
                                                                tmp_path: Path) -> None:
    ours = "/etc/ssh/sshd_config.d/00-opsctl-hardening.conf"
    root = _tree(tmp_path, {ours: "", "/etc/ssh/sshd_config.d/00-cloud.conf": "",
                            "/etc/ssh/sshd_config.d/50-site.conf": "",
                            "/etc/ssh/sshd_config.d/000-first.conf.bak": ""})
    assert facts.sshd_dropins(ours, root) == ["/etc/ssh/sshd_config.d/00-cloud.conf"]
    assert facts.sshd_dropins(ours, str(tmp_path / "nothing")) == []


def test_the_enabled_pam_profiles_are_read_from_debconf(facts: ModuleType) -> None:
    answer = ("* libpam-runtime/profiles: opsctl-unix, opsctl-faillock, pwquality, systemd\n"
              "  libpam-runtime/title:\n")
    assert facts.pam_profiles(answer) == ["opsctl-unix", "opsctl-faillock", "pwquality",
                                          "systemd"]
    assert facts.pam_profiles("  libpam-runtime/profiles:\n") == []
    assert facts.pam_profiles("") == []


def test_cron_and_grub_configuration_found_with_its_kind(facts: ModuleType,
                                                         tmp_path: Path) -> None:
    root = _tree(tmp_path, {"/etc/crontab": "", "/etc/cron.d/x": ""})
    assert facts.cron_grub(root) == [{"path": "/etc/crontab", "isdir": False},
                                     {"path": "/etc/cron.d", "isdir": True}]


def test_a_kernel_that_refuses_audit_is_said_so_with_its_answer(facts: ModuleType) -> None:
    refused = facts.audit(1, "", "Error sending status request (Operation not permitted)\n")
    assert refused == {"kernel_available": False, "immutable": False,
                       "reason": "kernel audit is not available to this host (auditctl -s: "
                                 "Error sending status request (Operation not permitted))"}
    assert facts.audit(2, "", "")["reason"].endswith("(auditctl -s: no answer)")
    assert facts.audit(0, "enabled 2\nfailure 2\n", "") == {
        "kernel_available": True, "immutable": True,
        "reason": "kernel audit is not available to this host (auditctl -s: no answer)"}
    assert facts.audit(0, "enabled 1\n", "")["immutable"] is False
