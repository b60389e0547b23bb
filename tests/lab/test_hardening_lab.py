"""Graded-protection hardening end to end on the lab (issue 3, second half).

A fresh lab (containers booted, nothing converged) is scanned first and scores poorly; the
session's `reference` fixture then converges site.yml, whose last playbook is hardening.yml.
After that every check the hardening role automates passes on every host (or is not applicable
for a reason the host's own state gives: kernel audit refused, /proc/sys read-only), the flow
audit is clean, a second `opsctl harden` changes nothing, the ops admin still logs in with its
key and administers through sudo with its password, and breaking one setting by hand fails
exactly that check on exactly that host (then it is repaired: the lab is shared).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import background
import pytest
import yaml

from opsctl.check.diff import diff_scans
from opsctl.check.fleet import scan_site
from opsctl.lab import lifecycle
from opsctl.lab.state import lab_dir
from opsctl.secrets import secrets_dir

# The first scan must see the lab before anything converges it.
pytestmark = pytest.mark.lab_first

ROOT = Path(__file__).resolve().parents[2]
ROLE_TASKS = ROOT / "roles" / "hardening" / "tasks"
# The checks whose fix the hardening role carries: their remediation names a concern tag
# that the role's tasks use.
ROLE_TAGS = sorted(set(re.findall(r"\bhardening-[a-z-]+[a-z]", "\n".join(
    p.read_text() for p in [*ROLE_TASKS.glob("*.yml"), ROOT / "playbooks" / "hardening.yml"]))))
# Detected, never flagged: the reasons a hardened lab host may give for not applicable.
DETECTED_NA = ("kernel audit is not available", "kernel parameters cannot be changed",
               "is not installed", "no GRUB configuration", "no pgBackRest repository",
               "not a backup host", "not the site's central log collector")


def opsctl(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "opsctl", *args], capture_output=True,
                          text=True, check=False, timeout=timeout)


@pytest.fixture(scope="session")
def fresh(reference_site):
    """The lab booted from the base image and scanned before anything converges it: steps of
    the session's bring-up, which then converges (conftest.reference_chain)."""
    done = background.CHAINS["reference"].wait("fresh-scan")
    assert done.ok, done.tail()
    return done.returncode, json.loads(done.stdout)


@pytest.fixture(scope="session")
def hardened(fresh, reference):
    """(site, the first apply's record, the scan after it) - `fresh` runs first."""
    site, first = reference
    return site, first, scan_site(site).document


def targets(doc: dict) -> dict[str, dict]:
    return {t["name"]: t for t in doc["targets"] if t["scope"] == "host"}


def automated(check: dict) -> bool:
    """The hardening role's concerns, and settings other roles own (the converge applied
    every role, so `opsctl apply --tags X` fixes are in place too)."""
    fix = check.get("remediation", "")
    return (any(fix == f"opsctl harden --tags {tag}" for tag in ROLE_TAGS)
            or fix.startswith("opsctl apply --tags "))


def log_host(site) -> str | None:
    """The central log collector the others forward their logs to (it keeps its own)."""
    return next((h.name for h in site.hosts.values()
                 if "logging" in h.groups and h.zone == "mgmt"), None)


def test_a_fresh_lab_scores_poorly(fresh):
    code, doc = fresh
    assert code == 1
    for name, target in targets(doc).items():
        failing = {c["id"] for c in target["checks"] if c["status"] == "fail"}
        assert len(failing) >= 25, (name, sorted(failing))
        assert {"pam_no_nullok", "login_defs_pass_max_days", "shell_tmout", "faillock_enabled",
                "aide_installed", "sshd_access_restricted"} <= failing, name
        assert "pam_no_nullok" in target["major_risks"]


def test_the_role_tags_match_the_catalog(hardened):
    assert {"hardening-sshd", "hardening-pam", "hardening-login-defs", "hardening-accounts",
            "hardening-shell", "hardening-sudo", "hardening-sysctl", "hardening-auditd",
            "hardening-permissions", "hardening-packages", "hardening-aide", "hardening-rsyslog",
            "hardening-tmp", "hardening-roles", "hardening-logserver"} <= set(ROLE_TAGS)


def test_after_hardening_every_automatable_check_passes_on_every_host(hardened):
    site, first, doc = hardened
    assert first.result == "ok", first.failures
    hosts = targets(doc)
    assert sorted(hosts) == sorted(site.hosts)
    logs = log_host(site)
    wrong = {}
    for name, target in hosts.items():
        assert target["error"] is None, name
        for check in target["checks"]:
            if not automated(check):
                continue
            if check["id"] == "rsyslog_forwarding" and name == logs:
                continue  # the log host is where the others forward to
            if check["id"] == "packages_known_vulnerable":
                # Debian's security data cannot be fetched here: the lab's mirror has none,
                # and the check says so instead of passing (test_vulnerabilities_lab judges
                # the hosts against data written around what they run).
                if check["status"] != "error" or "run opsctl mirror build" not in check["reason"]:
                    wrong[(name, check["id"])] = check["reason"]
                continue
            if check["status"] == "not_applicable":
                if not any(r in check["reason"] for r in DETECTED_NA):
                    wrong[(name, check["id"])] = check["reason"]
            elif check["status"] != "pass":
                wrong[(name, check["id"])] = check["reason"]
    assert not wrong, json.dumps({f"{h} {c}": r for (h, c), r in wrong.items()}, indent=1)


def test_unit_verdicts_match_the_reviewed_expectation(hardened):
    """Every host lists every unit its object concerns, with the verdict reviewed by hand in
    tests/lab/expected/reference-unit-verdicts.yml."""
    site, _, doc = hardened
    expected = yaml.safe_load(
        (Path(__file__).parent / "expected" / "reference-unit-verdicts.yml").read_text())
    wrong = {}
    for name, target in targets(doc).items():
        got = {u["unit"]: u["verdict"] for u in target["units"]}
        assert list(got) == list(expected), name
        for unit, verdict in expected.items():
            want = verdict if isinstance(verdict, str) else verdict[name]
            if got[unit] != want:
                wrong[f"{name} {unit}"] = f"{got[unit]} (expected {want})"
    assert not wrong, json.dumps(wrong, ensure_ascii=False, indent=1)


def test_not_applicable_results_come_from_the_host_state(hardened):
    _, _, doc = hardened
    for name, target in targets(doc).items():
        by_id = {c["id"]: c for c in target["checks"]}
        audit = by_id["auditd_running"]
        if audit["status"] == "not_applicable":  # kernel audit is not namespaced
            assert "kernel audit is not available" in audit["reason"], name
        else:
            assert audit["status"] == "pass", name
        sysctl = by_id["sysctl_rp_filter"]
        if sysctl["status"] == "not_applicable":
            assert "read-only" in sysctl["reason"], name


def test_the_flow_audit_is_clean(hardened):
    site, _, _ = hardened
    wrong = [r.as_dict() for r in lifecycle.check_flows(site) if not r.ok]
    assert not wrong, json.dumps(wrong[:10], indent=1)


def test_a_second_harden_changes_nothing(hardened):
    site, _, _ = hardened
    start = time.monotonic()
    done = opsctl("harden", "--site", str(site.directory), "-o", "json")
    seconds = time.monotonic() - start
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["request"]["playbook"] == "hardening.yml"
    assert {h: t["changed"] for h, t in record["hosts"].items()} == {h: 0 for h in site.hosts}
    print(f"second harden: {seconds:.1f}s")


def test_harden_check_diff_previews_without_changing(hardened):
    site, _, _ = hardened
    done = opsctl("harden", "--site", str(site.directory), "--check", "--diff",
                  "--tags", "hardening-sshd", "--limit", "app1", "-o", "json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["request"]["check"] is True and list(record["hosts"]) == ["app1"]
    assert record["hosts"]["app1"]["changed"] == 0


def ssh_as(site, user: str, host: str, command: str, stdin: str | None = None):
    lab = lab_dir(site.name)
    return subprocess.run(["ssh", "-F", str(lab / "ssh_config"), "-l", user, host, "--", command],
                          input=stdin, capture_output=True, text=True, timeout=60, check=False)


def test_ops_still_logs_in_with_its_key_and_administers_with_sudo(hardened):
    site, _, _ = hardened
    password = (secrets_dir(site.name) / "ops-password").read_text().strip()
    for host in site.hosts:
        done = ssh_as(site, "ops", host, "id -un; sudo -n true 2>&1 || true")
        assert done.returncode == 0, (host, done.stderr)
        assert done.stdout.splitlines()[0] == "ops"
        assert "password is required" in done.stdout  # no NOPASSWD any more
        done = ssh_as(site, "ops", host, "sudo -S -p '' id -u", stdin=password + "\n")
        assert done.returncode == 0 and done.stdout.strip() == "0", (host, done.stderr)
        # opsctl converges as ops, so the role refuses root's login outright
        done = ssh_as(site, "root", host, "id -u")
        assert done.returncode == 255 and "Permission denied" in done.stderr, (host, done.stderr)
        code, effective = lifecycle.ssh.remote(site, host, ["sshd", "-T"])
        assert code == 0 and "permitrootlogin no" in effective.splitlines(), host


def test_breaking_permit_root_login_on_app1_fails_exactly_that_check(hardened):
    site, _, _ = hardened
    before = scan_site(site).document
    # sshd keeps the first value it reads: a drop-in that sorts before the role's wins.
    dropin = "/etc/ssh/sshd_config.d/0-break.conf"
    code, out = lifecycle.ssh.remote(site, "app1", [
        "sh", "-c", f"echo 'PermitRootLogin yes' > {dropin}"])
    assert code == 0, out
    try:
        broken = scan_site(site).document
        changes = [(c.target, c.check, c.old, c.new) for c in diff_scans(before, broken).changes]
        # root's password login and root's login at all: the two checks PermitRootLogin holds
        assert changes == [("app1", "sshd_permit_root_login", "pass", "fail"),
                           ("app1", "sshd_root_login_refused", "pass", "fail")]
        check = next(c for c in targets(broken)["app1"]["checks"]
                     if c["id"] == "sshd_permit_root_login")
        assert "yes" in check["reason"]
        assert check["remediation"] == "opsctl harden --tags hardening-sshd"
        # harden verifies what sshd uses (sshd -T) and says what overrides it, on app1 only
        done = opsctl("harden", "--site", str(site.directory), "--tags", "hardening-sshd",
                      "-o", "json")
        assert done.returncode == 1
        record = json.loads(done.stdout)
        assert {h: t["status"] for h, t in record["hosts"].items() if t["status"] == "failed"} \
            == {"app1": "failed"}
        assert any("permitrootlogin yes" in f["message"] for f in record["failures"]), \
            record["failures"]
    finally:
        code, out = lifecycle.ssh.remote(site, "app1", ["rm", "-f", dropin])
        assert code == 0, out
    repaired = scan_site(site, limit=["app1"]).document
    check = next(c for c in targets(repaired)["app1"]["checks"]
                 if c["id"] == "sshd_permit_root_login")
    assert check["status"] == "pass"


def _remote(site, host: str, command: str, timeout: float = 15) -> tuple[int, str]:
    return lifecycle.ssh.remote(site, host, ["sh", "-c", command], timeout=timeout)


def _wait_for_line(site, collector: str, sender: str, marker: str, seconds: float) -> float:
    """Seconds until marker shows in the collector's file for sender; fails after `seconds`."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        code, _ = _remote(site, collector, f"grep -qF {marker} /var/log/remote/{sender}/syslog.log")
        if code == 0:
            return time.monotonic() - start
        time.sleep(0.5)
    raise AssertionError(f"{marker} from {sender} not on {collector} after {seconds:.0f}s")


def test_a_line_logged_on_db1_reaches_the_collector_over_tls(hardened):
    site, _, _ = hardened
    collector = log_host(site)
    assert collector == "mon1"
    marker = f"opsctl-lab-{time.time_ns()}"
    code, out = _remote(site, "db1", f"logger -t opsctl-labtest {marker}")
    assert code == 0, out
    seconds = _wait_for_line(site, collector, "db1", marker, 10)
    print(f"db1 -> {collector}: {seconds:.1f}s")
    # Received over TLS only: the collector listens on 6514 and nowhere in plain syslog.
    code, out = _remote(site, collector, "ss -Htln")
    assert code == 0 and ":6514" in out and ":514 " not in out, out


def test_logs_survive_a_collector_outage(hardened):
    site, _, _ = hardened
    collector = log_host(site)
    marker = f"opsctl-outage-{time.time_ns()}"
    code, out = _remote(site, collector, "systemctl stop rsyslog")
    assert code == 0, out
    try:
        code, out = _remote(site, "app2", f"logger -t opsctl-labtest {marker}")
        assert code == 0, out
        time.sleep(2)  # the forwarder finds the collector gone and keeps the record queued
    finally:
        code, out = _remote(site, collector, "systemctl start rsyslog")
        assert code == 0, out
    seconds = _wait_for_line(site, collector, "app2", marker, 60)
    print(f"queued record delivered {seconds:.1f}s after the collector came back")


def test_only_the_collector_takes_syslog_over_tls(hardened):
    site, _, _ = hardened
    probes = [r.as_dict() for r in lifecycle.check_flows(site) if r.probe.port == 6514]
    assert probes and all(p["outcome"] == "connected" or p["expect"] == "closed"
                          for p in probes)
    open_to = {p["to"] for p in probes if p["outcome"] == "connected"}
    assert open_to == {"mon1"}
    senders = {p["from"] for p in probes if p["outcome"] == "connected"}
    assert set(site.hosts) - {"mon1"} <= senders
    assert not any(p["from"] == "public" and p["outcome"] == "connected" for p in probes)


def test_every_host_follows_the_sites_time_source_through_the_time_flow(hardened):
    """chrony on app1 and db1 selects mon1 (the `time` group) as its source: udp/123 passes
    the boundary router and mon1's host firewall, and mon1 serves without an upstream."""
    site, _, _ = hardened
    [source] = sorted(h for h in site.hosts if "time" in site.hosts[h].groups)
    address = str(site.hosts[source].address)
    for host in ("app1", "db1"):
        deadline, out = time.monotonic() + 120, ""
        while time.monotonic() < deadline:
            code, out = _remote(site, host, "chronyc -n sources")
            if code == 0 and re.search(rf"^\^\*\s+{re.escape(address)}\s", out, re.M):
                break
            time.sleep(5)
        else:
            raise AssertionError(f"{host} has not selected {source} ({address}): {out}")


AIDE_DB = "/var/lib/aide/aide.db"
AIDE_PROBE = "/usr/local/sbin/opsctl-aide-probe"
AIDE_SECONDS = 600  # a baseline walks the whole filesystem; seven hosts share two cores here


def _aide_hashes(site, host: str) -> set[str]:
    """The hashes the host's AIDE baseline holds, from its header."""
    code, out = _remote(site, host, f"zcat -f {AIDE_DB} | grep -m1 '^@@db_spec'")
    assert code == 0, out
    return set(out.split()) & {"md5", "sha1", "rmd160", "tiger", "crc32", "haval", "gost",
                               "crc32b", "sha256", "sha512", "whirlpool"}


def test_the_first_converge_baselines_with_sha512_alone(hardened):
    site, _, _ = hardened
    assert _aide_hashes(site, "app1") == {"sha512"}


def test_a_baseline_with_debians_hashes_is_kept_and_its_check_reports_only_real_changes(hardened):
    """A host baselined before the role set AIDE's hashes (Debian's `H`, all eleven): the apply
    sets SHA-512 and leaves the baseline alone, so a file added since is still reported; the
    daily check has no "different attributes" noise for the hashes no longer kept, and the
    apply's own working files are not in the report."""
    site, _, _ = hardened
    host = "lb1"
    repaired = False
    try:
        code, out = _remote(site, host, "sed -i 's/^Checksums *=.*/Checksums = H/' "
                            "/etc/aide/aide.conf && sed -i '/^report_ignore_removed_attrs/d' "
                            "/etc/aide/aide.conf.d/99_opsctl_excludes && "
                            "aideinit --yes --force >/dev/null 2>&1 && "
                            f"sha256sum {AIDE_DB} && echo probe > {AIDE_PROBE}",
                            timeout=AIDE_SECONDS)
        assert code == 0, out
        baseline = out.split()[0]
        assert "whirlpool" in _aide_hashes(site, host)

        done = opsctl("harden", "--site", str(site.directory), "--tags", "hardening-aide",
                      "--limit", host, "-o", "json")
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        repaired = True
        assert json.loads(done.stdout)["hosts"][host]["changed"] >= 2  # aide.conf, conf.d

        code, out = _remote(site, host, f"sha256sum {AIDE_DB}; grep '^Checksums' "
                            "/etc/aide/aide.conf")
        assert out.split()[0] == baseline, "the apply made a new baseline"
        assert "Checksums = sha512" in out, out
        code, report = _remote(site, host, "aide --check --config /etc/aide/aide.conf",
                               timeout=AIDE_SECONDS)
        assert 1 <= code <= 7, report[-3000:]  # 1-7: added, removed or changed entries
        assert AIDE_PROBE in report, report[-3000:]
        assert "different attributes" not in report, report[-3000:]
        assert ".ansible" not in report, report[-3000:]
    finally:  # the lab is shared: lb1 leaves as converged, with a SHA-512 baseline
        if not repaired:
            opsctl("harden", "--site", str(site.directory), "--tags", "hardening-aide",
                   "--limit", host)
        code, out = _remote(site, host, f"rm -f {AIDE_PROBE} && "
                            "aideinit --yes --force >/dev/null 2>&1", timeout=AIDE_SECONDS)
        assert code == 0, out


def test_aides_check_leaves_the_platforms_data_out(hardened):
    """On the hosts whose data changes by the minute (the database members, the backup host,
    the monitoring host), AIDE's check after the converge and the tests so far reports nothing
    under the platform's data directories: database pages, WAL, the backup archive, etcd,
    the time-series store and the agents' state are not findings."""
    site, _, _ = hardened
    data = re.compile(r"^(?:[fdlLDBFs?!][^:]{0,20}): (/var/lib/(?:postgresql|etcd|pgbackrest|"
                      r"prometheus|opsctl-scheduler|opsctl-pgbackrest-status|"
                      r"opsctl-aide-status)/\S*|/var/spool/pgbackrest/\S*)$", re.M)

    def check(host: str) -> tuple[str, int, str]:
        code, out = _remote(site, host, "nice aide --check --config /etc/aide/aide.conf",
                            timeout=AIDE_SECONDS)
        return host, code, out

    with ThreadPoolExecutor(2) as pool:
        for host, code, out in pool.map(check, ["db1", "db2", "bak1", "mon1"]):
            assert code < 8, f"{host}: AIDE failed ({code}): {out[-2000:]}"
            assert not data.findall(out), f"{host}: {data.findall(out)[:10]}"
