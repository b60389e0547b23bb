"""The collector's pure parses, one section per module, against recorded outputs: what a
Debian 12 host's files and commands give the gathers (tests/unit/facts/collector/, or inline
when a few lines say it all). No host is read here."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

from security import facts
from security.collector import (
    accounts,
    audit,
    clock,
    database,
    files,
    integrity,
    kernel,
    logs,
    network,
    nginx,
    packages,
    pam,
    run,
    services,
    sshd,
    system,
)
from security.collector.base import FactError

RECORDED = Path(__file__).resolve().parent / "facts" / "collector"
DAY = 86400


def recorded(name: str) -> str:
    return (RECORDED / name).read_text()


def test_every_group_is_a_gather_and_a_parse_in_the_module_that_owns_it() -> None:
    for group, fact in run.FACTS.items():
        module = sys.modules[fact.__module__]
        assert callable(getattr(module, f"gather_{group}", None)), (group, module.__name__)
        assert callable(getattr(module, f"parse_{group}", None)), (group, module.__name__)


# ---------------------------------------------------------------- system

def test_system_from_os_release_and_what_pid1_is() -> None:
    got = system.parse_system({
        "os_release": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_ID="12"\nID=debian\n',
        "hostname": "db1", "container": "systemd-nspawn", "pid1": "systemd\n",
        "systemd_running": True})
    assert got == {"hostname": "db1", "os_id": "debian", "os_version": "12",
                   "container": "systemd-nspawn", "pid1": "systemd", "systemd_running": True}
    assert set(got) == facts.GROUPS["system"].keys
    bare = system.parse_system({"os_release": None, "hostname": "h", "container": "",
                                "pid1": None, "systemd_running": False})
    assert (bare["os_id"], bare["os_version"], bare["pid1"]) == ("", "", "")


def test_container_from_pid1s_environment() -> None:
    environ = b"PATH=/usr/bin\0container=systemd-nspawn\0TERM=vt220\0"
    assert system.container_from_environ(environ) == "systemd-nspawn"
    assert system.container_from_environ(b"container=\0") == "container"
    assert system.container_from_environ(b"HOME=/\0") is None


# ---------------------------------------------------------------- accounts

PASSWD = """\
root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
postgres:x:110:115:PostgreSQL administrator:/var/lib/postgresql:/bin/bash
backup:x:34:34:backup:/var/backups:/bin/sh
ops:x:1000:1000:ops:/home/ops:/bin/bash
guest:x:1001:1001::/home/guest:/bin/bash
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
"""
SHADOW = """\
root:!:19700:0:99999:7:::
daemon:*:19700:0:99999:7:::
postgres:!:19700::::::
backup:*:19700:0:99999:7:::
ops:$y$j9T$salt$hash:19990:1:90:14:30::
guest::19000:0:99999:7:::
nobody:*:19700:0:99999:7:::
"""
GROUP = "root:x:0:\nsudo:x:27:ops\nbackup:x:34:\nops:x:1000:\nguest:x:1001:\n"


def accounts_read(**overrides: object) -> dict:
    read = {"passwd": PASSWD, "shadow": SHADOW, "group": GROUP, "useradd": "SHELL=/bin/sh\n",
            "today": 20000,
            # postgres keeps a shell for pgBackRest: its one key is bound to the repository
            "authorized_keys": {"/var/lib/postgresql": ['from="172.31.30.21" ssh-ed25519 AAAA'],
                                "/var/backups": None},
            "home_is_dir": {"/home/ops": True, "/home/guest": False}}
    return {**read, **overrides}


def test_accounts_from_passwd_shadow_and_group() -> None:
    got = accounts.parse_accounts(accounts_read())
    assert set(got) == facts.GROUPS["accounts"].keys
    assert got["count"] == 7 and got["uid0_accounts"] == ["root"]
    assert got["empty_password"] == ["guest"] and got["root_password_state"] == "locked"
    assert got["login_accounts"] == ["backup", "guest", "ops", "postgres", "root"]
    assert got["system_accounts_with_shell"] == ["backup"]
    assert got["system_accounts_ssh_restricted"] == ["postgres"]
    assert got["generic_login_accounts"] == ["guest"]
    assert got["login_accounts_without_home"] == ["guest"]
    assert got["password_accounts"] == ["ops"] and got["human_password_accounts"] == ["ops"]
    assert (got["password_max_days_max"], got["password_min_days_min"],
            got["password_warn_days_min"], got["password_oldest_change_days"]) == (90, 1, 14, 10)
    assert got["human_inactive_days_max"] == 30
    # ops changed its password on day 19990 with a 90-day maximum; root's never expires
    assert got["password_expires"] == {"ops": 20080}
    assert got["password_hash_by_account"] == {"ops": "yescrypt"}
    assert got["group_members"] == {"sudo": ["ops"]} and got["inactive_default"] == -1
    assert "$y$" not in json.dumps(got)


def test_a_key_without_from_leaves_a_system_account_open() -> None:
    keys = {"/var/lib/postgresql": ['from="172.31.30.21" ssh-ed25519 AAAA', "ssh-ed25519 BBBB"]}
    got = accounts.parse_accounts(accounts_read(authorized_keys=keys))
    assert got["system_accounts_with_shell"] == ["backup", "postgres"]
    assert got["system_accounts_ssh_restricted"] == []


def test_useradd_inactive_and_duplicates() -> None:
    passwd = PASSWD + "ops:x:1000:1000::/home/ops:/bin/bash\n"
    got = accounts.parse_accounts(accounts_read(passwd=passwd, useradd="INACTIVE=35\n"))
    assert got["inactive_default"] == 35
    assert got["duplicate_names"] == ["ops"] and got["duplicate_uids"] == [1000]


def test_login_defs_shell_and_sudo() -> None:
    assert accounts.parse_login_defs("PASS_MAX_DAYS\t90\nUMASK\t\t027\n# PASS_MIN_DAYS 1\n") == \
        {"PASS_MAX_DAYS": 90, "UMASK": "027"}
    shell = accounts.parse_shell({
        "/etc/profile": "umask 022\n", "/etc/bash.bashrc": None,
        "/etc/profile.d/opsctl-hardening.sh": "TMOUT=600\nreadonly TMOUT\nexport TMOUT\n"
                                              "umask 027\n"})
    assert shell == {"tmout": 600, "tmout_readonly": True,
                     "tmout_sources": ["/etc/profile.d/opsctl-hardening.sh"],
                     "profile_umask": "0027"}
    sudo = accounts.parse_sudo({
        "/etc/sudoers": "Defaults\tuse_pty\nroot\tALL=(ALL:ALL) ALL\n%sudo\tALL=(ALL:ALL) ALL\n"
                        "@includedir /etc/sudoers.d\n",
        "/etc/sudoers.d/ops": "ops ALL=(ALL) NOPASSWD: ALL\n"
                              "backup ALL=(root) /usr/bin/pgbackrest\n",
        "/etc/sudoers.d/gone": None})
    assert sudo == {"full_access": ["%sudo", "ops", "root"], "nopasswd_all": ["ops"],
                    "files": ["/etc/sudoers", "/etc/sudoers.d/ops"]}


# ---------------------------------------------------------------- pam

COMMON_AUTH = """\
auth\trequired\t\t\tpam_faillock.so preauth
auth\t[success=1 default=ignore]\tpam_unix.so try_first_pass
auth\t[default=die]\t\t\tpam_faillock.so authfail
auth\trequisite\t\t\tpam_deny.so
auth\trequired\t\t\tpam_permit.so
"""
COMMON_PASSWORD = """\
password\trequisite\t\t\tpam_pwquality.so retry=3
password\trequired\t\t\tpam_pwhistory.so remember=5 use_authtok
password\t[success=1 default=ignore]\tpam_unix.so obscure use_authtok try_first_pass yescrypt
password\trequisite\t\t\tpam_deny.so
"""


def test_pam_stack_of_the_hardening_role() -> None:
    got = pam.parse_pam({"auth": COMMON_AUTH, "password": COMMON_PASSWORD,
                         "account": "account\trequired\tpam_unix.so\n"
                                    "account\trequired\tpam_faillock.so\n",
                         "session": "session\trequired\tpam_unix.so\n",
                         "su": "auth       required   pam_wheel.so group=sudo\n"})
    assert set(got) == facts.GROUPS["pam"].keys
    assert got["faillock_enabled"] and got["pwquality_enabled"] and got["nullok_in"] == []
    assert got["faillock_preauth_before_unix"] and got["faillock_authfail_after_unix"]
    assert got["faillock_in_account"] and got["su_restricted_to_group"]
    assert (got["password_hash"], got["pwhistory_remember"]) == ("yescrypt", 5)


def test_pam_debian_default_allows_empty_passwords() -> None:
    auth = "auth\t[success=1 default=ignore]\tpam_unix.so nullok\nauth\trequisite\tpam_deny.so\n"
    got = pam.parse_pam({"auth": auth, "password": "password\t[success=1 default=ignore]\t"
                         "pam_unix.so obscure yescrypt\n", "account": "", "session": "",
                         "su": None})
    assert got["nullok_in"] == ["common-auth"] and not got["faillock_enabled"]
    assert not got["su_restricted_to_group"] and got["pwhistory_remember"] is None


def test_pwquality_credits_demand_classes_and_pam_arguments_win() -> None:
    got = pam.parse_pwquality({
        "conf": {"/etc/security/pwquality.conf": "minlen = 12\ndcredit = -1\nucredit = -1\n",
                 "/etc/security/pwquality.conf.d/50.conf": None},
        "common_password": "password requisite pam_pwquality.so retry=3 minlen=14\n"})
    assert got == {"minlen": 14, "minclass": 2, "retry": 3, "enforce_for_root": False,
                   "dictcheck": 1,
                   "sources": ["/etc/security/pwquality.conf", "/etc/pam.d/common-password"]}
    assert pam.parse_pwquality({"conf": {}, "common_password": None})["sources"] == []


def test_faillock_conf_and_module_arguments() -> None:
    got = pam.parse_faillock({"conf": "deny = 5\nunlock_time = 900\neven_deny_root\n",
                              "common_auth": COMMON_AUTH.replace("authfail", "authfail deny=4")})
    assert got == {"deny": 4, "unlock_time": 900, "fail_interval": 900, "even_deny_root": True,
                   "sources": ["/etc/security/faillock.conf", "/etc/pam.d/common-auth"]}


# ---------------------------------------------------------------- sshd

def test_sshd_effective_settings_recorded() -> None:
    got = sshd.parse_sshd((0, recorded("sshd-T.txt"), ""))
    assert got["permitrootlogin"] == "no" and got["maxauthtries"] == 3
    assert got["listenaddress"] == ["[::]:22", "0.0.0.0:22"] and got["port"] == ["22"]
    assert got["allowgroups"] == ["sysadm", "backup"]
    assert got["macs"] == ["hmac-sha2-512-etm@openssh.com", "hmac-sha2-256-etm@openssh.com"]
    assert got["subsystem"] == ["sftp /usr/lib/openssh/sftp-server"]
    assert got["authorizedkeysfile"] == ".ssh/authorized_keys .ssh/authorized_keys2"


def test_sshd_that_refuses_its_configuration_is_an_error_with_its_last_line() -> None:
    err = "/etc/ssh/sshd_config.d/x.conf line 1: Bad configuration option: Nope\n" \
          "/etc/ssh/sshd_config: terminating, 1 bad configuration options\n"
    with pytest.raises(FactError, match="sshd -T failed: .*terminating, 1 bad"):
        sshd.parse_sshd((255, "", err))
    with pytest.raises(FactError, match="sshd -T failed: 255"):
        sshd.parse_sshd((255, "", ""))


# ---------------------------------------------------------------- packages

def test_dpkg_status_recorded() -> None:
    got = packages.parse_packages(recorded("dpkg-status.txt"))
    assert got["count"] == 4 and "telnet" not in got["installed"]
    assert got["installed"]["openssh-client"] == "1:9.2p1-2+deb12u6"
    assert got["sources"]["bash"] == ["bash", "5.2.15-2"]  # a binNMU: the source's own version
    assert got["sources"]["libssl3"] == ["openssl", "3.0.19-1~deb12u2"]
    assert got["sources"]["adduser"] == ["adduser", "3.134"]


# ---------------------------------------------------------------- services

def test_units_recorded_with_one_left_off_by_design() -> None:
    disabled = services.parse_disabled_units({"auditd.service": "\nkernel audit refused\n",
                                              "README": "not a unit"})
    got = services.parse_services(recorded("systemctl-show.txt"), disabled)
    assert got["auditd.service"] == {"present": True, "active": "inactive", "enabled": "disabled",
                                     "refuse_manual_stop": True,
                                     "disabled_by_design": "kernel audit refused"}
    assert got["telnet.socket"]["present"] is False and got["telnet.socket"]["enabled"] is None
    assert got["tmp.mount"]["enabled"] == "static"
    assert all(set(unit) == facts.UNIT_KEYS for unit in got.values())


def test_processes_are_distinct_sorted_names() -> None:
    assert services.parse_processes(["sshd\n", "systemd\n", "sshd\n"]) == \
        {"names": ["sshd", "systemd"]}


# ---------------------------------------------------------------- audit

def audit_read(**overrides: object) -> dict:
    read = {"kernel": (True, "", 1), "container": "", "auditctl": "/usr/sbin/auditctl",
            "auditctl_list": (0, "-w /etc/passwd -p wa -k identity\n"
                                 "-a always,exit -F arch=b64 -S adjtimex -k time-change\n", ""),
            "cmdline": "BOOT_IMAGE=/vmlinuz-6.1.0-28-amd64 root=/dev/mapper/vg0-root ro audit=1"}
    return {**read, **overrides}


def test_audit_rules_loaded_and_the_kernel_line() -> None:
    got = audit.parse_audit(audit_read())
    assert set(got) == facts.GROUPS["audit"].keys
    assert got["kernel_available"] and got["enabled"] == 1 and not got["immutable"]
    assert got["rules"] == ["-w /etc/passwd -p wa -k identity",
                            "-a always,exit -F arch=b64 -S adjtimex -k time-change"]
    assert got["rules_text"].count("\n") == 1 and got["cmdline_audit"] == "1"


def test_audit_without_rules_or_refused() -> None:
    assert audit.parse_audit(audit_read(auditctl_list=(0, "No rules\n", "")))["rules"] == []
    failed = audit.parse_audit(audit_read(auditctl_list=(1, "", "You must be root\n")))
    assert failed["rules_error"] == "You must be root"
    refused = audit.parse_audit(audit_read(
        kernel=(False, "the kernel refused audit status: Operation not permitted", None),
        container="docker", auditctl=None, auditctl_list=None, cmdline=None))
    assert "a docker container" in refused["unavailable_reason"]
    assert not refused["auditctl_present"] and refused["cmdline_audit"] is None


def test_auditd_conf_capacity_and_the_oldest_log() -> None:
    conf = "log_file = /var/log/audit/audit.log\nmax_log_file = 50\nnum_logs = 10\n" \
           "max_log_file_action = ROTATE\nspace_left_action = email\nlog_group = adm\n"
    got = audit.parse_auditd_conf({"conf": conf, "log_mtimes": [10 * DAY, 2 * DAY],
                                   "now": 12 * DAY + 5})
    assert (got["rotate_capacity_mb"], got["space_left_action"], got["log_group"],
            got["oldest_log_days"]) == (500, "email", "adm", 10)
    keep = audit.parse_auditd_conf({"conf": "max_log_file_action = keep_logs\n",
                                    "log_mtimes": [], "now": 0})
    assert keep["rotate_capacity_mb"] is None and keep["oldest_log_days"] is None
    absent = audit.parse_auditd_conf({"conf": None, "log_mtimes": None, "now": 0})
    assert absent["present"] is False and set(absent) == facts.GROUPS["auditd_conf"].keys


# ---------------------------------------------------------------- logs

def test_rsyslog_forwarder_receiver_and_journald() -> None:
    rsyslog = {
        "/etc/rsyslog.conf": "module(load=\"imuxsock\")\n$FileCreateMode 0640\n"
                             "auth,authpriv.*\t\t\t/var/log/auth.log\n"
                             "*.*;auth,authpriv.none\t\t-/var/log/syslog\n",
        "/etc/rsyslog.d/10-receiver.conf":
            'template(name="remote" type="string" string="/var/log/remote/%HOSTNAME%/x.log")\n'
            'ruleset(name="r") { action(type="omfile" dynaFile="remote") }\n'
            'module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1"\n'
            '       streamDriver.authMode="x509/name")\n'
            'input(type="imtcp" port="6514" ruleset="r")\n',
        "/etc/rsyslog.d/60-forward.conf":
            '*.* action(type="omfwd" target="172.31.10.11" port="6514" protocol="tcp"\n'
            '           streamDriver="gtls" streamDriverMode="1" streamDriverAuthMode="x509/name"\n'
            '           queue.type="LinkedList" queue.filename="fwd")\n',
        "/etc/rsyslog.d/absent.conf": None}
    got = logs.parse_rsyslog({
        "rsyslog": rsyslog,
        "logrotate": {"/etc/logrotate.conf": "weekly\nrotate 4\n",
                      "/etc/logrotate.d/remote": "/var/log/remote/*/*.log {\n  monthly\n"
                                                 "  rotate 7\n  maxage 200\n}\n"},
        "journald": {"/etc/systemd/journald.conf": "[Journal]\n#Storage=auto\n"},
        "journal_dir": True})
    assert set(got) == facts.GROUPS["rsyslog"].keys
    assert got["forward_targets"] == got["forward_tls_targets"] == ["172.31.10.11"]
    assert got["forward_disk_queue_targets"] == ["172.31.10.11"]
    assert got["receiver_tls_ports"] == [6514]  # TLS from the module's defaults
    assert got["receive_dirs"] == ["/var/log/remote"]
    assert got["received_retention_days"] == 200  # 7 months, capped by maxage
    assert got["file_create_mode"] == "0640" and got["auth_log_files"] == ["/var/log/auth.log"]
    assert got["journald_persistent"] is True  # auto, and /var/log/journal exists


def test_rsyslog_legacy_tls_applies_to_forwards_after_it() -> None:
    text = "*.* @@before.example:6514\n$DefaultNetstreamDriver gtls\n*.* @@after.example:6514\n" \
           "*.* @udp.example\n"
    got = logs.parse_rsyslog({"rsyslog": {"/etc/rsyslog.conf": text}, "logrotate": {},
                              "journald": {"/etc/systemd/journald.conf": "Storage=volatile\n"},
                              "journal_dir": True})
    assert got["forward_targets"] == ["after.example", "before.example", "udp.example"]
    assert got["forward_tls_targets"] == ["after.example"]
    assert got["journald_persistent"] is False and got["received_retention_days"] is None


def test_nothing_configured_is_said_so() -> None:
    got = logs.parse_rsyslog({"rsyslog": {"/etc/rsyslog.conf": None}, "logrotate": {},
                              "journald": {}, "journal_dir": False})
    assert got["configured"] is False and got["forward_targets"] == []
    assert got["journald_persistent"] is False


# ---------------------------------------------------------------- files

def test_stat_results_become_mode_owner_group() -> None:
    got = files.parse_files({
        "/etc/shadow": {"mode": stat.S_IFREG | 0o640, "owner": "root", "group": "shadow"},
        "/etc/cron.d": {"mode": stat.S_IFDIR | 0o755, "owner": "root", "group": "root"},
        "/boot/grub/grub.cfg": {"missing": True},
        "/var/log/audit": {"error": "Permission denied"}})
    assert got["/etc/shadow"] == {"exists": True, "mode": "0640", "owner": "root",
                                  "group": "shadow", "is_dir": False}
    assert got["/etc/cron.d"]["is_dir"] is True
    assert got["/boot/grub/grub.cfg"] == {"exists": False}
    assert got["/var/log/audit"] == {"error": "/var/log/audit: Permission denied"}


REG, DIR = stat.S_IFREG, stat.S_IFDIR


def test_walk_finds_world_writable_and_readable_dumps() -> None:
    system_entries = iter([("/etc/cron.d/backup", REG | 0o666), ("/etc/passwd", REG | 0o644),
                           ("/usr/local/share", DIR | 0o777), ("/opt/tmp", DIR | 0o1777)])
    home_entries = iter([("/home/ops/land.SQL", REG | 0o644), ("/home/ops/own.dump", REG | 0o600),
                         ("/tmp/x.csv", DIR | 0o755), ("/root/notes.txt", REG | 0o644)])
    got = files.parse_walk({"system": system_entries, "homes": home_entries,
                            "complete": lambda: True})
    assert set(got) == facts.GROUPS["walk"].keys
    assert got["world_writable_files"] == ["/etc/cron.d/backup"]
    assert got["world_writable_dirs_without_sticky"] == ["/usr/local/share"]
    assert got["world_readable_dumps"] == ["/home/ops/land.SQL"]
    assert got["covered"] is True


def test_walk_keeps_the_first_hits_and_says_when_it_stopped_early() -> None:
    many = [(f"/etc/f{i:03}", REG | 0o666) for i in range(files.WALK_MAX_HITS + 5)]
    got = files.parse_walk({"system": iter(many[::-1]), "homes": iter([]),
                            "complete": lambda: False})
    assert len(got["world_writable_files"]) == files.WALK_MAX_HITS
    assert got["world_writable_files"][0] == "/etc/f005"  # the first seen, then sorted
    assert got["complete"] is False and "stopped at its 3 s bound" in got["covered"]["error"]


def test_the_bounded_walk_reads_a_tree(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "deep.sql").write_text("x")
    (tmp_path / "top.csv").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "top.csv")
    walk = files.BoundedWalk(60)
    seen = {path for path, _mode in walk.entries([str(tmp_path)], 1)}
    assert seen == {str(tmp_path / p) for p in ("a", "a/b", "top.csv")}  # depth 1, no symlink
    assert walk.complete
    stopped = files.BoundedWalk(-1)
    assert list(stopped.entries([str(tmp_path)], 4)) == [] and not stopped.complete


# ---------------------------------------------------------------- kernel

def test_sysctl_values_and_access() -> None:
    assert kernel.parse_sysctl({"net.ipv4.ip_forward": "0\n", "kernel.yama.ptrace_scope": None,
                                "fs.suid_dumpable": "2\n"}) == \
        {"net.ipv4.ip_forward": 0, "kernel.yama.ptrace_scope": None, "fs.suid_dumpable": 2}
    assert kernel.parse_sysctl_access({"read_only": False, "container": ""}) == \
        {"read_only": False, "reason": ""}
    got = kernel.parse_sysctl_access({"read_only": True, "container": "systemd-nspawn"})
    assert got["reason"] == "/proc/sys is mounted read-only (a systemd-nspawn container: the " \
                            "machine that runs it sets these)"


def test_mounts_recorded() -> None:
    got = kernel.parse_mounts({"mounts": recorded("proc-mounts.txt"), "tmpfiles": {}})
    assert got["tmp_fstype"] == "tmpfs" and "noexec" in got["tmp_options"]
    assert got["tmp_cleanup"] is True  # tmpfs empties itself
    assert got["shm_options"] == ["rw", "nosuid", "nodev", "noexec", "inode64"]
    on_disk = kernel.parse_mounts({"mounts": "/dev/vda / ext4 rw 0 0\n",
                                   "tmpfiles": {"/usr/lib/tmpfiles.d/tmp.conf":
                                                "D /tmp 1777 root root -\n"}})
    assert on_disk["tmp_fstype"] is None and on_disk["tmp_cleanup"] is True



@pytest.mark.parametrize(("line", "cleared"), [
    ("D /tmp 1777 root root -", True),  # emptied at boot
    ("d /tmp 1777 root root 10d", True),  # aged: files older than 10 days go
    ("d /tmp 1777 root root -", False),  # made, never cleaned
    ("d /tmp 1777 root root", False),
    ("d /tmp 1777 root root - argument", False),  # an argument is not an age
    ("D /var/tmp 1777 root root -", False),
])
def test_tmp_cleared_by_tmpfiles(line: str, cleared: bool) -> None:
    assert kernel.tmpfiles_clean_tmp([line]) is cleared


def test_core_dump_limits() -> None:
    got = kernel.parse_limits({
        "limits": {"/etc/security/limits.conf": "#*  soft  core  0\n",
                   "/etc/security/limits.d/50-opsctl.conf": "*  hard  core  0\n"},
        "coredump": {"/etc/systemd/coredump.conf": "[Coredump]\nStorage=none\n"}})
    assert got == {"hard_core_zero": True, "coredump_storage": "none"}


def test_swap_on_dm_crypt() -> None:
    swaps = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n" \
            "/dev/dm-1                               partition\t999420\t\t0\t\t-2\n" \
            "/swapfile                               file\t\t524284\t\t0\t\t-3\n"
    got = kernel.parse_swap({"swaps": swaps, "encrypted": {"/dev/dm-1": True,
                                                            "/swapfile": False}})
    assert got == {"active": ["/dev/dm-1", "/swapfile"], "unencrypted": ["/swapfile"]}
    assert kernel.parse_swap({"swaps": swaps.splitlines()[0], "encrypted": {}}) == \
        {"active": [], "unencrypted": []}


# ---------------------------------------------------------------- network

def test_listening_sockets_recorded() -> None:
    got = network.parse_listening({"tcp": recorded("proc-net-tcp.txt"),
                                   "tcp6": recorded("proc-net-tcp6.txt"),
                                   "udp": recorded("proc-net-udp.txt"), "udp6": None})
    assert got["tcp"] == ["0.0.0.0:2024", "172.31.10.1:3142", "::1:5432", ":::22"]
    assert got["tcp_ports"] == [22, 2024, 3142]  # 5432 on ::1 is loopback
    assert got["udp_ports"] == [123]  # chronyd's 323 is on 127.0.0.1
    assert got["high_risk_ports"] == []


def test_nftables_chains_recorded() -> None:
    got = network.parse_nftables((0, recorded("nft-list-chains.json"), ""))
    assert got == {"chains": 4, "input_policy": "drop",
                   "hooks": {"input": "drop", "forward": "drop", "output": "accept"}}
    with pytest.raises(FactError, match="nft list chains failed: Operation not permitted"):
        network.parse_nftables((1, "", "Operation not permitted\n"))
    empty = network.parse_nftables((0, '{"nftables": [{"metainfo": {}}]}', ""))
    assert empty == {"chains": 0, "input_policy": None, "hooks": {}}


# ---------------------------------------------------------------- clock

def test_time_sources() -> None:
    got = clock.parse_time({
        "chrony": {"/etc/chrony/chrony.conf": "pool 2.debian.pool.ntp.org iburst\n"
                                              "driftfile /var/lib/chrony/chrony.drift\n",
                   "/etc/chrony/sources.d/opsctl.sources": "server 172.31.10.1 iburst\n",
                   "/etc/chrony/conf.d/serve.conf": "allow 172.31.0.0/16\nlocal stratum 8\n"},
        "timesyncd": {"/etc/systemd/timesyncd.conf": "[Time]\nNTP=172.31.10.1 ntp.example\n"}})
    assert got == {"servers": ["172.31.10.1", "2.debian.pool.ntp.org", "ntp.example"],
                   "serves_others": True, "local_clock": True}


# ---------------------------------------------------------------- integrity

def test_aide_database_age_and_what_schedules_it() -> None:
    cron = {"tables": {"/etc/crontab": "17 * * * * root cd / && run-parts --report "
                                       "/etc/cron.hourly\n",
                       "/etc/cron.d/aide": "0 5 * * * root /usr/bin/aide --check\n"},
            "scripts": {"/etc/cron.daily/aide": "#!/bin/sh\n[ -d /run/systemd/system ] && "
                                                "exit 0\n/usr/bin/aide.wrapper --check\n"}}
    read = {"config": "/etc/aide/aide.conf", "database": "/var/lib/aide/aide.db",
            "database_mtime": 3 * DAY, "now": 10 * DAY, "timer_enabled": True, "cron": cron,
            "systemd_running": True, "status": CONVERGED_STATUS}
    got = integrity.parse_aide(read)
    assert {k: v for k, v in got.items() if not k.startswith("status_")} == {
        "config": "/etc/aide/aide.conf", "database": "/var/lib/aide/aide.db",
        "database_age_days": 7, "timer_enabled": True, "cron_entries": ["/etc/cron.d/aide"]}
    assert got["status_age_seconds"] == 10 * DAY - STATUS_WRITTEN
    # without systemd, Debian's daily script is what runs the check
    without = integrity.parse_aide({**read, "systemd_running": False, "database": None})
    assert without["cron_entries"] == ["/etc/cron.d/aide", "/etc/cron.daily/aide"]
    assert without["database_age_days"] is None


# What gather_aide_status reads on a converged host (role monitor_agent): the timer enabled,
# the directory root:opsctl-monitor 2750, the file the timer replaced with 0640 in it.
STATUS_WRITTEN = 10 * DAY - 600
CONVERGED_STATUS = {
    "timer_state": "enabled",
    "file": {"mode": 0o640, "owner": "root", "group": "opsctl-monitor"},
    "directory": {"mode": 0o2750, "owner": "root", "group": "opsctl-monitor"},
    "text": json.dumps({"written": STATUS_WRITTEN, "baseline": 3.0 * DAY,
                        "check": {"finished": 9.5 * DAY, "exit_code": 0, "added": 0,
                                  "removed": 0, "changed": 0}}),
}


def test_the_aide_status_of_a_converged_host() -> None:
    got = integrity.parse_aide_status(CONVERGED_STATUS, now=10 * DAY)
    assert got == {"status_timer": "enabled",
                   "status_file": "/var/lib/opsctl-aide-status/status.json",
                   "status_age_seconds": 600, "status_problem": None,
                   "status_access": "root:opsctl-monitor 0640, its directory "
                                    "root:opsctl-monitor 2750",
                   "status_agent_readable": True}


@pytest.mark.parametrize(("change", "problem"), [
    ({"file": None, "text": None}, "/var/lib/opsctl-aide-status/status.json: absent"),
    ({"file": "Permission denied", "text": None},
     "/var/lib/opsctl-aide-status/status.json: Permission denied"),
    ({"text": "{"}, "/var/lib/opsctl-aide-status/status.json: no 'written' time in it "
                    "(not the timer's JSON)"),
    ({"text": '{"written": "yesterday"}'},
     "/var/lib/opsctl-aide-status/status.json: no 'written' time in it (not the timer's JSON)"),
])
def test_an_absent_or_unreadable_status_has_no_age_and_says_why(change, problem) -> None:
    got = integrity.parse_aide_status({**CONVERGED_STATUS, **change}, now=10 * DAY)
    assert got["status_age_seconds"] is None
    assert got["status_problem"] == problem


@pytest.mark.parametrize(("file", "directory", "readable"), [
    ((0o640, "opsctl-monitor"), (0o2750, "opsctl-monitor"), True),
    # the file is root's alone: the agent cannot read it
    ((0o600, "opsctl-monitor"), (0o2750, "opsctl-monitor"), False),
    ((0o640, "root"), (0o2750, "opsctl-monitor"), False),
    # the directory does not let the agent's group in
    ((0o640, "opsctl-monitor"), (0o2700, "opsctl-monitor"), False),
    # readable now, but without setgid the timer's next file is root's group
    ((0o640, "opsctl-monitor"), (0o0750, "opsctl-monitor"), False),
    ((0o640, "opsctl-monitor"), (0o2755, "root"), False),
])
def test_the_agents_group_reads_the_status_now_and_after_the_next_write(
        file, directory, readable) -> None:
    read = {**CONVERGED_STATUS,
            "file": {"mode": file[0], "owner": "root", "group": file[1]},
            "directory": {"mode": directory[0], "owner": "root", "group": directory[1]}}
    got = integrity.parse_aide_status(read, now=10 * DAY)
    assert got["status_agent_readable"] is readable
    assert got["status_access"] == (f"root:{file[1]} {file[0]:04o}, its directory "
                                    f"root:{directory[1]} {directory[0]:04o}")


def test_the_aide_status_without_its_directory_or_systemd() -> None:
    got = integrity.parse_aide_status({"timer_state": None, "file": None, "directory": None,
                                       "text": None}, now=10 * DAY)
    assert got == {"status_timer": None, "status_file": None, "status_age_seconds": None,
                   "status_problem": "/var/lib/opsctl-aide-status/status.json: absent",
                   "status_access": None, "status_agent_readable": False}


def test_the_timers_state_is_systemctls_word(monkeypatch) -> None:
    monkeypatch.setattr(integrity.os.path, "isdir", lambda p: p == "/run/systemd/system")
    monkeypatch.setattr(integrity.shutil, "which", lambda name: "/usr/bin/systemctl")
    answers = {"opsctl-aide-status.timer": (1, "disabled\n", "")}
    monkeypatch.setattr(integrity, "run", lambda argv, timeout: answers[argv[-1]])
    assert integrity.unit_file_state("opsctl-aide-status.timer") == "disabled"
    answers["opsctl-aide-status.timer"] = (1, "", "Failed to get unit file state for "
                                           "opsctl-aide-status.timer: No such file or directory")
    assert integrity.unit_file_state("opsctl-aide-status.timer") == "not-found"
    monkeypatch.setattr(integrity.os.path, "isdir", lambda p: False)
    assert integrity.unit_file_state("opsctl-aide-status.timer") is None


def test_clamav_signature_age() -> None:
    assert integrity.parse_clamav({"mtimes": [DAY, 4 * DAY], "now": 6 * DAY}) == \
        {"signatures_age_days": 2}
    assert integrity.parse_clamav({"mtimes": [], "now": 6 * DAY}) == \
        {"signatures_age_days": None}


# ---------------------------------------------------------------- database

def test_postgresql_settings_alter_system_wins_and_weak_hba() -> None:
    cluster = {"name": "15/main",
               "conf": ["password_encryption = md5\nssl = on\nlog_connections = yes\n",
                        "log_statement = 'DDL'  # conf.d\n",
                        "# Do not edit this file manually!\n"
                        "password_encryption = 'scram-sha-256'\n"],
               "hba": "local   all   postgres   peer\nlocal   all   all   trust\n"
                      "host    all   all   127.0.0.1/32   scram-sha-256\n"
                      "host    operational   app   172.31.20.0/24   scram-sha-256\n"
                      "hostssl all   all   172.31.30.0/24   md5\n"}
    got = database.parse_postgresql([cluster])
    assert set(got) == facts.GROUPS["postgresql"].keys
    assert got["password_encryption"] == ["scram-sha-256"] and got["ssl"] == ["on"]
    assert got["log_connections"] == ["on"] and got["log_disconnections"] == ["off"]
    assert got["log_statement"] == ["ddl"]
    assert got["weak_hba"] == ["host (not hostssl) for a remote address", "hostssl md5",
                               "local trust"]
    assert database.parse_postgresql([]) == {
        "installed": False, "clusters": [], "password_encryption": [], "ssl": [], "weak_hba": [],
        "log_connections": [], "log_disconnections": [], "log_statement": []}


def test_pgbackrest_repository_and_newest_full_backup() -> None:
    conf = "[global]\nrepo1-path=/var/lib/pgbackrest\nrepo1-cipher-type=aes-256-cbc\n"
    got = database.parse_pgbackrest({"conf": conf, "repository_here": True,
                                     "backup_mtimes": [3600.0, 7200.0], "now": 7200.0 + 5 * 3600})
    assert got == {"configured": True, "repository_here": True, "newest_backup_hours": 5,
                   "encrypted": True}
    assert database.pgbackrest_repo("repo1-host=bak1\nrepo1-path=/var/lib/pgbackrest\n") == \
        ("/var/lib/pgbackrest", True)
    assert database.parse_pgbackrest(None)["configured"] is False


def test_etcd_from_its_environment_file_or_config_file() -> None:
    env = database.etcd_env('ETCD_LISTEN_CLIENT_URLS="https://172.31.30.11:2379"\n'
                            "ETCD_CLIENT_CERT_AUTH='true'\n")
    got = database.parse_etcd({"env": env, "config": None, "config_text": None})
    assert got["config"] == database.ETCD_ENV and got["client_cert_auth"]
    assert got["plain_urls"] == ["http://localhost:2380"]
    conf = database.parse_etcd({"env": {}, "config": "/etc/etcd/etcd.yml",
                                "config_text": "listen-peer-urls: https://172.31.30.11:2380\n"})
    assert conf["config"] == "/etc/etcd/etcd.yml"
    assert conf["plain_urls"] == ["http://localhost:2379"]
    absent = database.parse_etcd(None)
    assert absent["installed"] is False and set(absent) == facts.GROUPS["etcd"].keys


def test_patroni_files_merge_in_order() -> None:
    got = database.parse_patroni({"installed": True, "files": {
        "/etc/patroni/config.d/10.yml": "restapi:\n  listen: 0.0.0.0:8008\n  certfile: /a.crt\n",
        "/etc/patroni/config.d/20.yml": "restapi:\n  certfile: /b.crt\n  keyfile: /b.key\n"}})
    assert got == {"installed": True, "config_files": ["/etc/patroni/config.d/10.yml",
                                                       "/etc/patroni/config.d/20.yml"],
                   "rest_listen": "0.0.0.0:8008", "rest_certfile": "/b.crt",
                   "rest_keyfile": "/b.key"}


# ---------------------------------------------------------------- nginx

def test_nginx_listeners_and_protocols() -> None:
    site = "server {\n  listen 443 ssl;\n  listen 80;\n  listen 8080;\n" \
           "  ssl_protocols TLSv1.2 TLSv1.3;\n}\n"
    got = nginx.parse_nginx([site, None])
    assert got == {"installed": True, "ssl_listen": True, "plain_listen": ["8080"],
                   "ssl_protocols": ["TLSv1.2", "TLSv1.3"], "ssl_protocols_set": True}
    default = nginx.parse_nginx(["server {\n  listen 443 ssl;\n}\n"])
    assert default["ssl_protocols"] == list(nginx.NGINX_DEFAULT_PROTOCOLS)
    assert nginx.parse_nginx(None)["installed"] is False
