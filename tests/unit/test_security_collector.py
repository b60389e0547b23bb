"""The collector: runs as `python3 -`, keeps to the fact contract, never emits a secret."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from security import collector, facts
from security.collector import (
    accounts,
    audit,
    base,
    database,
    logs,
    network,
    pam,
    run,
    services,
    sshd,
)
from security.collector.bundle import collector_script

ROOT = Path(__file__).resolve().parents[2]
RECORDED = Path(__file__).resolve().parent / "facts" / "control-node.json"
SECRETS = re.compile(r"\$(1|2[aby]|5|6|y|gy|7)\$|PRIVATE KEY")


@pytest.fixture(scope="module")
def live() -> dict:
    script = collector_script()
    proc = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True,
                          timeout=60, check=True)
    return json.loads(proc.stdout)


@pytest.mark.parametrize("source", ["recorded", "live"])
def test_no_secrets_in_the_output(source: str, live: dict) -> None:
    text = RECORDED.read_text() if source == "recorded" else json.dumps(live)
    assert not SECRETS.search(text)


def test_the_collector_uses_the_standard_library_only() -> None:
    tree = collector_script()
    imported = set(re.findall(r"^\s*import (\w+)|^\s*from (\w+) import", tree, re.M))
    modules = {a or b for a, b in imported}
    assert modules <= set(sys.stdlib_module_names) | {"__future__"}


@pytest.mark.parametrize("source", ["recorded", "live"])
def test_every_group_keeps_to_the_fact_contract(source: str, live: dict) -> None:
    doc = json.loads(RECORDED.read_text()) if source == "recorded" else live
    assert doc["schema"] == "opsctl-facts/1"
    assert set(doc["facts"]) == set(collector.FACTS)
    for name, value in doc["facts"].items():
        spec = facts.GROUPS[name]
        assert spec.scope == "host"
        if set(value) == {"error"} or spec.keys is None:
            continue
        assert set(value) <= spec.keys, (name, set(value) - spec.keys)
        if name not in ("files", "services", "sysctl"):
            assert set(value) == spec.keys, (name, spec.keys - set(value))


def test_a_broken_fact_becomes_an_error_and_the_scan_goes_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def boom() -> dict:
        raise KeyError("surprise")

    def missing() -> dict:
        raise collector.FactError("sshd is not installed")

    monkeypatch.setattr(run, "FACTS", {"a": boom, "b": missing,
                                       "c": lambda: {"ok": True}})
    doc = run.collect()
    assert doc["facts"]["a"] == {"error": "collector bug: KeyError: 'surprise'"}
    assert doc["facts"]["b"] == {"error": "sshd is not installed"}
    assert doc["facts"]["c"] == {"ok": True}


def test_missing_commands_are_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sshd.shutil, "which", lambda name: None)
    monkeypatch.setattr(sshd.os.path, "exists", lambda path: False)
    with pytest.raises(collector.FactError, match="sshd is not installed"):
        sshd.fact_sshd()
    with pytest.raises(collector.FactError, match="nft: command not found"):
        network.fact_nftables()


def test_kernel_audit_refused_inside_a_container_says_so(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit, "kernel_audit_status",
                        lambda: (False, "the kernel refused audit status: Operation not "
                                 "permitted", None))
    monkeypatch.setattr(audit, "detect_container", lambda: "systemd-nspawn")
    got = audit.fact_audit()
    assert got["kernel_available"] is False
    assert "Operation not permitted" in got["unavailable_reason"]
    assert "systemd-nspawn container" in got["unavailable_reason"]
    assert got["rules"] == []


def test_units_off_by_design_come_from_the_directory_the_hardening_role_writes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.collectors.systemd import parse_disabled

    (tmp_path / "auditd.service").write_text("kernel audit is not available to this host\n")
    (tmp_path / "README").write_text("not a unit")
    def disabled_units(directory: str) -> dict[str, str]:
        return services.parse_disabled_units(services.read_disabled_units_dir(directory))

    assert disabled_units(str(tmp_path)) == {
        "auditd.service": "kernel audit is not available to this host"}
    assert disabled_units(str(tmp_path / "absent")) == {}
    # the agent reads the same directory the same way (status and scan say the same reason)
    entries = {"auditd.service": "why\nmore", "tmp.mount": "", "x.dpkg-old": "no",
               "long.service": "y" * 300}
    assert services.parse_disabled_units(entries) == parse_disabled(entries)
    show = ("Id=auditd.service\nLoadState=loaded\nActiveState=inactive\n"
            "UnitFileState=disabled\nRefuseManualStop=yes\n\n"
            "Id=ssh.service\nLoadState=loaded\nActiveState=active\nUnitFileState=enabled\n"
            "RefuseManualStop=no\n")
    units = services.parse_services(show, {"auditd.service": "kernel audit is not available"})
    assert units["auditd.service"] == {"present": True, "active": "inactive",
                                       "enabled": "disabled", "refuse_manual_stop": True,
                                       "disabled_by_design": "kernel audit is not available"}
    assert units["ssh.service"]["disabled_by_design"] is None
    assert set(units["ssh.service"]) == facts.UNIT_KEYS


def test_pam_lines_keep_bracketed_controls(monkeypatch: pytest.MonkeyPatch) -> None:
    text = ("auth\trequisite\tpam_faillock.so preauth\n"
            "auth\t[success=1 default=ignore]\tpam_unix.so nullok try_first_pass\n"
            "auth\t[default=die]\tpam_faillock.so authfail deny=4\n")
    monkeypatch.setattr(pam, "read", lambda path: text)
    rows = pam.parse_pam_lines(pam.read_pam("common-auth"))
    assert rows[1][:4] == ["auth", "[success=1 default=ignore]", "pam_unix.so", "nullok"]
    assert pam.pam_args(rows, "pam_faillock.so") == {"preauth": True, "authfail": True,
                                                            "deny": 4}


def test_pwquality_conf_bare_enforce_for_root(monkeypatch: pytest.MonkeyPatch) -> None:
    files = {"/etc/security/pwquality.conf": "# minlen = 8\n",
             "/etc/security/pwquality.conf.d/50-opsctl-hardening.conf":
                 "minlen = 12\nminclass = 3\nenforce_for_root\n",
             "/etc/pam.d/common-password": "password\trequisite\tpam_pwquality.so retry=3\n"}
    monkeypatch.setattr(base, "read_opt", files.get)
    monkeypatch.setattr(pam, "read", lambda path: files[path])
    monkeypatch.setattr(pam, "conf_dir", lambda d, suffix=".conf": [
        p for p in files if p.startswith(d + "/")])
    got = pam.fact_pwquality()
    assert (got["minlen"], got["minclass"], got["enforce_for_root"]) == (12, 3, True)


def test_proc_net_listeners(tmp_path: Path) -> None:
    tcp = tmp_path / "tcp"
    tcp.write_text(
        "  sl  local_address rem_address   st\n"
        "   0: 0100007F:0CEA 00000000:0000 0A 0 0 0\n"
        "   1: 00000000:0016 00000000:0000 0A 0 0 0\n"
        "   2: 0B1E1FAC:0016 0C1E1FAC:D431 01 0 0 0\n")
    got = network.parse_proc_net(tcp.read_text(), "0A")
    assert got == [("127.0.0.1", 3306), ("0.0.0.0", 22)]
    assert not network.is_loopback("0.0.0.0") and network.is_loopback("127.0.0.1")


def test_login_defs_keeps_octal_strings() -> None:
    parsed = base.kv_file("UMASK\t\t022\nPASS_MAX_DAYS\t99999\n")
    assert parsed == {"UMASK": "022", "PASS_MAX_DAYS": 99999}


def test_sshd_effective_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    out = ("port 22\nport 2222\npermitrootlogin without-password\nmaxauthtries 6\n"
           "ciphers chacha20-poly1305@openssh.com,aes256-ctr\nallowgroups sysadm\n")
    monkeypatch.setattr(sshd.shutil, "which", lambda name: "/usr/sbin/sshd")
    monkeypatch.setattr(sshd, "run", lambda argv, timeout=10: (0, out, ""))
    got = sshd.fact_sshd()
    assert got["port"] == ["22", "2222"]
    assert got["permitrootlogin"] == "without-password" and got["maxauthtries"] == 6
    assert got["ciphers"] == ["chacha20-poly1305@openssh.com", "aes256-ctr"]
    failed = (1, "", "sshd: no hostkeys available -- exiting.\n")
    monkeypatch.setattr(sshd, "run", lambda argv, timeout=10: failed)
    with pytest.raises(collector.FactError, match="no hostkeys available"):
        sshd.fact_sshd()


FORWARDER = """\
*.* @@plain.example:514
*.* action(type="omfwd" target="172.31.10.11" port="6514" protocol="tcp"
           streamDriver="gtls" streamDriverMode="1" streamDriverAuthMode="x509/name"
           queue.type="LinkedList" queue.filename="opsctl_fwd" queue.maxDiskSpace="512m")
"""
RECEIVER = """\
template(name="remote" type="string" string="/var/log/remote/%HOSTNAME%/syslog.log")
ruleset(name="r") {
  action(type="omfile" dynaFile="remote" fileCreateMode="0640")
}
module(load="imtcp")
input(type="imtcp" port="6514" ruleset="r" streamDriver.name="gtls" streamDriver.mode="1"
      streamDriver.authMode="x509/name" permittedPeer=["db1", "app1"])
input(type="imtcp" port="514" ruleset="r")
"""
ROTATE = """\
/var/log/remote/*/*.log {
    daily
    rotate 190
    postrotate
        /usr/lib/rsyslog/rsyslog-rotate
    endscript
}
"""


def _rsyslog(monkeypatch: pytest.MonkeyPatch, files: dict[str, str]) -> dict:
    monkeypatch.setattr(base, "read_opt", files.get)
    monkeypatch.setattr(logs, "conf_dir", lambda d, suffix=".conf": sorted(
        p for p in files if p.startswith(d + "/")))
    return logs.fact_rsyslog()


def test_rsyslog_forwarding_tls_and_disk_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    got = _rsyslog(monkeypatch, {"/etc/rsyslog.conf": "", "/etc/rsyslog.d/60.conf": FORWARDER})
    assert got["forward_targets"] == ["172.31.10.11", "plain.example"]
    assert got["forward_tls_targets"] == ["172.31.10.11"]
    assert got["forward_disk_queue_targets"] == ["172.31.10.11"]
    assert got["receiver_tls_ports"] == [] and got["received_retention_days"] is None


def test_rsyslog_anonymous_tls_is_not_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    text = FORWARDER.replace('streamDriverAuthMode="x509/name"', 'streamDriverAuthMode="anon"')
    got = _rsyslog(monkeypatch, {"/etc/rsyslog.d/60.conf": text})
    assert got["forward_tls_targets"] == []


def test_rsyslog_receiver_and_its_retention(monkeypatch: pytest.MonkeyPatch) -> None:
    files = {"/etc/rsyslog.d/10.conf": RECEIVER, "/etc/logrotate.d/remote": ROTATE}
    got = _rsyslog(monkeypatch, files)
    assert got["receiver_tls_ports"] == [6514]  # the plain 514 input does not count
    assert got["receive_dirs"] == ["/var/log/remote"]
    assert got["received_retention_days"] == 190
    files["/etc/logrotate.d/remote"] = ROTATE.replace("daily", "weekly\n    maxage 150")
    assert _rsyslog(monkeypatch, files)["received_retention_days"] == 150


@pytest.mark.parametrize(("hashed", "scheme"), [
    ("$y$j9T$abc$def", "yescrypt"), ("$gy$j9T$abc$def", "gost-yescrypt"),
    ("$6$salt$hash", "sha512"), ("$5$salt$hash", "sha256"), ("$1$salt$hash", "md5"),
    ("$2b$12$abcdefghijk", "bcrypt"), ("abJnggxhB/yWI", "descrypt"), ("$9$x", "unknown"),
    ("not a hash at all", "unknown"),
])
def test_hash_scheme_reads_the_prefix_only(hashed: str, scheme: str) -> None:
    assert accounts.hash_scheme(hashed) == scheme


def test_accounts_report_hash_schemes_and_groups_never_a_hash(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    files = {
        "/etc/passwd": "root:x:0:0::/root:/bin/bash\nops:x:1000:0::/home/ops:/bin/bash\n"
                       "old:x:1001:1001::/home/old:/bin/bash\nsvc:x:998:998::/:/usr/sbin/nologin\n",
        "/etc/shadow": "root:!:19000:0:99999:7:::\nops:$y$j9T$salt$hash:19000:1:90:14:35::\n"
                       "old:abJnggxhB/yWI:19000:0:99999:7:::\nsvc:*:19000:::::\n",
        "/etc/group": "root:x:0:\ntoor:x:0:\nstaff:x:1001:\nstaff:x:1002:\nold:x:1001:\n",
        "/etc/default/useradd": "SHELL=/bin/sh\n# INACTIVE=-1\n",
    }
    real_read, real_read_opt = base.read, base.read_opt

    def fake_read(path: str) -> str:
        return files[path] if path in files else real_read(path)

    def fake_read_opt(path: str) -> str | None:
        return files[path] if path in files else real_read_opt(path)

    monkeypatch.setattr(accounts, "read", fake_read)
    monkeypatch.setattr(accounts, "read_opt", fake_read_opt)
    facts_ = accounts.fact_accounts()
    assert facts_["password_hash_by_account"] == {"old": "descrypt", "ops": "yescrypt"}
    assert facts_["password_hash_schemes"] == ["descrypt", "yescrypt"]
    assert facts_["gid0_groups"] == ["root", "toor"]
    assert facts_["gid0_primary_accounts"] == ["ops", "root"]
    assert facts_["duplicate_gids"] == [0, 1001]
    assert facts_["duplicate_group_names"] == ["staff"]
    assert facts_["inactive_default"] == -1
    assert facts_["human_password_accounts"] == ["old", "ops"]
    assert facts_["human_inactive_days_max"] == 99999  # old has none
    assert not SECRETS.search(json.dumps(facts_)) and "abJnggxhB" not in json.dumps(facts_)


def test_faillock_order_in_common_auth() -> None:
    rows = pam.parse_pam_lines

    good = rows("""
auth requisite pam_faillock.so preauth
auth [success=1 default=ignore] pam_unix.so try_first_pass
auth [default=die] pam_faillock.so authfail
auth requisite pam_deny.so""")
    account = rows("account required pam_faillock.so")
    assert pam.faillock_order(good, account) == {
        "faillock_preauth_before_unix": True, "faillock_authfail_after_unix": True,
        "faillock_in_account": True}
    swapped = [good[2], good[1], good[0], good[3]]
    assert pam.faillock_order(swapped, []) == {
        "faillock_preauth_before_unix": False, "faillock_authfail_after_unix": False,
        "faillock_in_account": False}
    optional = [["auth", "optional", "pam_faillock.so", "preauth"], *good[1:]]
    assert not pam.faillock_order(optional, account)["faillock_preauth_before_unix"]


def test_auth_log_files_from_selectors() -> None:
    lines = ["auth,authpriv.*\t\t\t/var/log/auth.log",
             "*.*;auth,authpriv.none\t\t-/var/log/syslog",
             "authpriv.*  /var/log/secure-only-half", "*.*  /var/log/all.log",
             "kern.*  -/var/log/kern.log"]
    assert logs.auth_log_files(lines) == ["/var/log/all.log", "/var/log/auth.log"]


def test_kernel_command_line_audit() -> None:
    assert audit.cmdline_value("BOOT_IMAGE=/vmlinuz ro audit=1 quiet", "audit") == "1"
    assert audit.cmdline_value("ro audit=1 audit=0", "audit") == "0"
    assert audit.cmdline_value("ro audit_backlog_limit=8192", "audit") is None


def test_etcd_env_and_config_file() -> None:
    env = {"ETCD_LISTEN_CLIENT_URLS": "https://10.1.1.1:2379",
           "ETCD_LISTEN_PEER_URLS": "https://10.1.1.1:2380", "ETCD_CERT_FILE": "/p/h.crt",
           "ETCD_PEER_CERT_FILE": "/p/h.crt", "ETCD_CLIENT_CERT_AUTH": "true",
           "ETCD_PEER_CLIENT_CERT_AUTH": "true"}
    got = database.parse_etcd_env(env, "/etc/default/etcd")
    assert got["plain_urls"] == [] and got["client_cert_auth"] and got["peer_client_cert_auth"]
    default = database.parse_etcd_env({}, "/etc/default/etcd")
    assert default["plain_urls"] == ["http://localhost:2379", "http://localhost:2380"]
    assert default["cert_file"] is None and not default["client_cert_auth"]
    conf = database.parse_etcd_config(
        "name: m1\nlisten-client-urls: https://10.1.1.1:2379\n"
        "listen-peer-urls: http://10.1.1.1:2380\nclient-transport-security:\n"
        "  cert-file: /p/h.crt\n  client-cert-auth: true\npeer-transport-security:\n"
        "  cert-file: /p/h.crt\n  client-cert-auth: false\n", "/etc/etcd/etcd.conf.yml")
    assert conf["plain_urls"] == ["http://10.1.1.1:2380"]
    assert conf["client_cert_auth"] and not conf["peer_client_cert_auth"]
    assert conf["cert_file"] == conf["peer_cert_file"] == "/p/h.crt"


def test_patroni_restapi_block_of_the_roles_template() -> None:
    text = (ROOT / "roles" / "postgresql" / "templates" / "patroni.yml.j2").read_text()
    rest = database.patroni_restapi(text)
    assert rest["certfile"] == "{{ postgresql_pki_dir }}/host.crt"
    assert rest["keyfile"] == "{{ postgresql_pki_dir }}/host.key"
    assert "username" not in rest  # nested under authentication, not the block's own key
    assert database.patroni_restapi("restapi:\n  listen: 0.0.0.0:8008\nctl:\n  certfile: x\n") \
        == {"listen": "0.0.0.0:8008"}


def test_postgresql_booleans() -> None:
    assert [database.pg_bool(v) for v in ("on", "true", "yes", "1", "t", "off", "0", "no")] == \
        ["on", "on", "on", "on", "on", "off", "off", "off"]
