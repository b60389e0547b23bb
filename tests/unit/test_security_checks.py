"""Every check against recorded facts: a passing host, a failing host, and the real control node."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from security_fixtures import failing_host, passing_host, recorded

from opsctl.check.netfacts import network_facts
from opsctl.site.model import load_site
from security.evaluate import (
    ERROR,
    FAIL,
    MANUAL,
    NA,
    NONCONFORM,
    PARTIAL,
    PASS,
    evaluate_target,
    verdict,
)
from security.schema import load_catalog

ROOT = Path(__file__).resolve().parents[2]
CHECKS = load_catalog()
HOST = [c for c in CHECKS if c.spec.scope == "host"]
NETWORK = [c for c in CHECKS if c.spec.scope == "network"]


def statuses(scope: str, facts: dict) -> dict[str, tuple[str, str]]:
    target = evaluate_target("t", scope, CHECKS, facts)
    return {r.id: (r.status, r.reason) for r in target.results}


# The central log collector's checks apply to the `logging` host only, and forwarding to every
# other host: one host cannot be both, so each fixture is evaluated in both roles.
COLLECTOR_ONLY = {"log_receiver_tls", "log_receiver_retention"}
FORWARDER_ONLY = {"rsyslog_forwarding"}


def as_collector(facts: dict) -> dict:
    facts["context"] = {**facts["context"], "groups": [*facts["context"]["groups"], "logging"]}
    return facts


def test_every_host_check_passes_on_the_hardened_host() -> None:
    got = statuses("host", passing_host())
    wrong = {k: v for k, v in got.items() if v[0] != PASS and k not in COLLECTOR_ONLY}
    assert not wrong, wrong
    assert {got[k][0] for k in COLLECTOR_ONLY} == {NA}
    assert len(got) == len(HOST)
    collector = statuses("host", as_collector(passing_host()))
    assert {k: v for k, v in collector.items() if v[0] != PASS} == {
        k: (NA, "this host is the central log collector (it keeps its own records)")
        for k in FORWARDER_ONLY}


# Checks of what AIDE's findings go through: where AIDE is missing (the neglected host),
# aide_installed fails and these do not apply.
AIDE_ONLY = {"aide_findings_exported"}


def test_every_host_check_fails_on_the_neglected_host() -> None:
    got = statuses("host", failing_host())
    wrong = {k: v for k, v in got.items()
             if v[0] != FAIL and k not in COLLECTOR_ONLY | AIDE_ONLY}
    assert not wrong, wrong
    assert {got[k][0] for k in AIDE_ONLY} == {NA}
    with_aide = failing_host()
    with_aide["packages"]["installed"]["aide"] = "0.18.3-1+deb12u3"
    assert {statuses("host", with_aide)[k][0] for k in AIDE_ONLY} == {FAIL}
    collector = statuses("host", as_collector(failing_host()))
    assert {collector[k][0] for k in COLLECTOR_ONLY} == {FAIL}


def test_the_control_node_evaluates_without_crashing_and_errors_name_a_reason() -> None:
    got = statuses("host", recorded())
    assert {s for s, _ in got.values()} <= {PASS, FAIL, NA, ERROR}
    for cid, (status, reason) in got.items():
        if status in (FAIL, ERROR, NA):
            assert reason, cid


def test_a_missing_fact_group_is_error_not_crash() -> None:
    facts = passing_host()
    facts["sshd"] = {"error": "sshd -T failed: no hostkeys available"}
    got = statuses("host", facts)
    assert got["sshd_permit_root_login"] == (ERROR, "sshd: sshd -T failed: no hostkeys available")
    del facts["audit"]
    assert statuses("host", facts)["audit_rules_identity"][0] == ERROR


def test_audit_checks_are_not_applicable_where_kernel_audit_is_unavailable() -> None:
    facts = failing_host()
    facts["audit"] = {**facts["audit"], "kernel_available": False,
                      "unavailable_reason": "the kernel refused audit status: Operation not "
                      "permitted (running in a systemd-nspawn container)"}
    got = statuses("host", facts)
    audit_checks = [c.id for c in HOST if "audit" in c.spec.collect]
    assert len(audit_checks) >= 15
    for cid in audit_checks:
        status, reason = got[cid]
        assert status == NA, cid
        assert "systemd-nspawn" in reason


REASON = ("kernel audit is not available to this host (auditctl -s: Error sending status "
          "request (Operation not permitted))")


def test_auditd_left_off_by_design_carries_the_reason_and_changes_no_outcome() -> None:
    """The record the hardening role writes joins the evidence of the auditd service checks;
    every status stays what it was without it (not tested here, fail on a host with audit)."""
    facts = failing_host()
    facts["audit"] = {**facts["audit"], "kernel_available": False,
                      "unavailable_reason": "EPERM (running in a systemd-nspawn container)"}
    without = evaluate_target("t", "host", CHECKS, facts).results
    facts["services"]["auditd.service"]["disabled_by_design"] = REASON
    with_record = evaluate_target("t", "host", CHECKS, facts).results
    assert [r.status for r in with_record] == [r.status for r in without]
    noted = {r.id: r for r in with_record
             if any(e.note and e.fact.startswith("services.auditd") for e in r.evidence)}
    assert set(noted) == {"auditd_running", "auditd_enabled_at_boot"}
    for result in noted.values():
        assert result.status == NA and result.kind == "not_tested"
        [note] = [e for e in result.evidence if e.note]
        assert note.note == f"auditd disabled by design: {REASON}"
        assert note.found == REASON and note.fact == "services.auditd.service.disabled_by_design"
        assert result.reason.endswith(f"; auditd disabled by design: {REASON}")
        assert "EPERM" in result.reason
        assert result.as_dict()["evidence"][-1]["note"] == note.note
    # a stale record on a host where audit works: auditd_running still fails, with the note
    facts["audit"] = failing_host()["audit"]
    running = next(r for r in evaluate_target("t", "host", CHECKS, facts).results
                   if r.id == "auditd_running")
    assert running.status == FAIL and running.reason.startswith("processes.names is")
    assert running.reason.endswith(f"auditd disabled by design: {REASON}")
    # no record: no note, and the evidence document keeps its old shape
    plain = next(r for r in without if r.id == "auditd_running")
    assert all(e.note is None for e in plain.evidence)
    assert all("note" not in e for e in plain.as_dict()["evidence"])


def test_sysctl_checks_are_not_applicable_where_proc_sys_is_read_only() -> None:
    facts = failing_host()
    facts["sysctl_access"] = {"read_only": True, "reason": "/proc/sys is mounted read-only "
                              "(a systemd-nspawn container: the machine that runs it sets these)"}
    got = statuses("host", facts)
    sysctl_checks = [c.id for c in HOST if c.id.startswith("sysctl_")]
    assert len(sysctl_checks) >= 12
    for cid in sysctl_checks:
        status, reason = got[cid]
        assert status == NA, cid
        assert "read-only" in reason and "systemd-nspawn" in reason
    assert got["core_dumps_restricted"][0] == FAIL  # limits.d is the host's own business


def test_breaking_one_setting_fails_exactly_that_check() -> None:
    facts = passing_host()
    facts["sshd"]["permitrootlogin"] = "yes"
    got = statuses("host", facts)
    assert [k for k, v in got.items() if v[0] != PASS and k not in COLLECTOR_ONLY] == [
        "sshd_permit_root_login", "sshd_root_login_refused"]
    # root's key login (what a site that converges as root keeps) fails only the second
    facts["sshd"]["permitrootlogin"] = "without-password"
    got = statuses("host", facts)
    assert [k for k, v in got.items() if v[0] != PASS and k not in COLLECTOR_ONLY] == [
        "sshd_root_login_refused"]


def test_forwarding_without_tls_or_disk_queue_fails() -> None:
    facts = passing_host()
    facts["rsyslog"]["forward_tls_targets"] = []
    status, reason = statuses("host", facts)["rsyslog_forwarding"]
    assert status == FAIL and "forward_tls_targets" in reason
    facts = passing_host()
    facts["rsyslog"]["forward_disk_queue_targets"] = []
    assert statuses("host", facts)["rsyslog_forwarding"][0] == FAIL


def test_the_sites_own_time_source_passes_without_an_upstream() -> None:
    """An air-gapped node's time host follows nothing: it serves its own clock to the site."""
    facts = passing_host()
    facts["time"] = {"servers": [], "serves_others": True, "local_clock": True}
    assert statuses("host", facts)["time_sync_configured"][0] == PASS
    facts["time"] = {"servers": [], "serves_others": True, "local_clock": False}
    assert statuses("host", facts)["time_sync_configured"][0] == FAIL  # serves nothing sound
    facts["time"] = {"servers": [], "serves_others": False, "local_clock": True}
    assert statuses("host", facts)["time_sync_configured"][0] == FAIL  # a lone clock


def test_collector_retention_below_180_days_fails() -> None:
    facts = as_collector(passing_host())
    facts["rsyslog"]["received_retention_days"] = 179
    assert statuses("host", facts)["log_receiver_retention"][0] == FAIL
    facts["rsyslog"]["received_retention_days"] = None  # no logrotate rule for the directory
    assert statuses("host", facts)["log_receiver_retention"][0] == FAIL


def _passing_site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    shutil.copytree(ROOT / "inventory" / "reference", site)
    hosts = yaml.safe_load((site / "hosts.yml").read_text())
    hosts["all"]["children"]["mgmt"]["hosts"]["log1"] = {"ansible_host": "172.31.10.12"}
    hosts["all"]["children"]["logging"] = {"hosts": {"log1": None}}
    (site / "hosts.yml").write_text(yaml.safe_dump(hosts))
    spec = yaml.safe_load((site / "group_vars/all/site.yml").read_text())
    spec["site"]["flows"] += [
        {"name": "logs", "from": "all", "to": "logging", "ports": [6514],
         "why": "rsyslog forwards to the central collector over TLS"},
    ]
    (site / "group_vars/all/site.yml").write_text(yaml.safe_dump(spec, allow_unicode=True))
    return site


def test_every_network_check_passes_on_a_complete_site(tmp_path: Path) -> None:
    facts = network_facts(load_site(str(_passing_site(tmp_path))),
                          probes=[{"from": "app1", "to": "db1", "port": 5432, "expect": "open",
                                   "outcome": "connected"}])
    got = statuses("network", facts)
    wrong = {k: v for k, v in got.items() if v[0] != PASS}
    assert not wrong, wrong
    assert len(got) == len(NETWORK)


def test_without_probes_no_check_of_the_enforced_boundary_passes_from_the_model() -> None:
    """The model says what the firewall should do; only probes say what it does. Without
    them every check of the enforced boundary is an error naming why, none a pass; the
    checks of the policy document itself still judge the model."""
    got = statuses("network", network_facts(load_site(str(ROOT / "inventory" / "reference"))))
    enforced = {"net_boundary_default_deny", "net_ssh_only_from_mgmt",
                "net_agent_only_from_mgmt", "net_public_reaches_only_lb",
                "net_secure_not_reachable_from_public", "net_secure_exposure_minimal",
                "net_mgmt_zone_isolated", "net_probes_no_unexpected_open",
                "net_probes_allowed_flows_work"}
    assert {k for k, v in got.items() if v[0] == ERROR} == enforced
    assert all("boundary not probed" in got[k][1] for k in enforced)
    assert sorted(k for k, v in got.items() if v[0] == FAIL) == []
    assert {k for k, v in got.items() if v[0] == PASS} == set(got) - enforced


def test_every_network_check_fails_on_a_broken_site(tmp_path: Path) -> None:
    site = _passing_site(tmp_path)
    spec = yaml.safe_load((site / "group_vars/all/site.yml").read_text())
    spec["site"]["flows"] += [
        {"name": "public-db", "from": "public", "to": "db", "ports": [5432], "why": "oops"},
        {"name": "internet-admin", "from": "internet", "to": "all", "ports": [2222, 9110],
         "why": "convenience"},
        {"name": "internet-bak", "from": "internet", "to": "backup", "ports": [8432], "why": "x"},
    ]
    (site / "group_vars/all/site.yml").write_text(yaml.safe_dump(spec, allow_unicode=True))
    facts = network_facts(load_site(str(site)), probes=[
        {"from": "public", "to": "db1", "port": 5432, "expect": "closed", "outcome": "connected"},
        {"from": "app1", "to": "db1", "port": 5432, "expect": "open", "outcome": "TimeoutError"},
    ])
    # What load_site refuses cannot be built from a site; the facts say it instead.
    facts["site"].update({
        "zones_overlapping": ["internet/secure"], "hosts_outside_zone": ["db9"],
        "boundary_policy": "accept", "unmatched_traffic_logged": False,
        "unused_flows": ["old-ftp"], "monitoring_hosts_in_mgmt": [],
        "log_collector_hosts_in_mgmt": [], "mirror_in_mgmt": False,
        "time_source_in_mgmt": False,
    })
    got = statuses("network", facts)
    wrong = {k: v for k, v in got.items() if v[0] != FAIL}
    assert not wrong, wrong


@pytest.mark.parametrize("check", [c.id for c in HOST if c.spec.not_applicable_when])
def test_not_applicable_conditions_name_their_reason(check: str) -> None:
    spec = next(c for c in HOST if c.id == check).spec
    assert all(na.reason for na in spec.not_applicable_when)


def test_a_zone_without_a_log_flow_fails_central_collection(tmp_path: Path) -> None:
    site = _passing_site(tmp_path)
    spec = yaml.safe_load((site / "group_vars/all/site.yml").read_text())
    spec["site"]["flows"] = [f for f in spec["site"]["flows"] if 6514 not in f["ports"]] + [
        {"name": "logs", "from": "internet", "to": "logging", "ports": [6514], "why": "x"}]
    (site / "group_vars/all/site.yml").write_text(yaml.safe_dump(spec, allow_unicode=True))
    facts = network_facts(load_site(str(site)))
    assert facts["site"]["zones_not_forwarding_logs"] == ["mgmt", "secure"]
    assert statuses("network", facts)["net_central_log_collection"][0] == FAIL


# ---------------------------------------------------------------- a verdict claims no more
# than its evidence (issue 13, part 3)

ROLE = ROOT / "roles" / "hardening"


def _check(cid: str):
    return next(c for c in CHECKS if c.id == cid)


def test_client_alive_count_max_zero_disables_the_disconnection_and_fails() -> None:
    facts = passing_host()
    facts["sshd"]["clientalivecountmax"] = 0
    status, reason = statuses("host", facts)["sshd_client_alive"]
    assert status == FAIL and "clientalivecountmax is 0" in reason
    facts["sshd"]["clientalivecountmax"] = 1
    assert statuses("host", facts)["sshd_client_alive"][0] == PASS


def test_faillock_module_present_in_the_wrong_places_fails() -> None:
    facts = passing_host()
    for key in ("faillock_preauth_before_unix", "faillock_authfail_after_unix",
                "faillock_in_account"):
        facts = passing_host()
        facts["pam"][key] = False
        status, reason = statuses("host", facts)["faillock_enabled"]
        assert status == FAIL and key in reason


def test_the_roles_idle_limits_are_within_what_the_checks_accept() -> None:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())

    def bound(cid: str, fact: str, op: str) -> int:
        leaves = _check(cid).spec.pass_.all_of
        return next(leaf.value for leaf in leaves if leaf.fact == fact and leaf.op == op)

    assert bound("shell_tmout", "shell.tmout", "le") == 600
    assert 1 <= defaults["hardening_tmout"] <= bound("shell_tmout", "shell.tmout", "le")
    count = defaults["hardening_sshd_client_alive_count_max"]
    assert bound("sshd_client_alive", "sshd.clientalivecountmax", "ge") <= count <= \
        bound("sshd_client_alive", "sshd.clientalivecountmax", "le")
    facts = passing_host()
    facts["shell"]["tmout"] = defaults["hardening_tmout"]
    assert statuses("host", facts)["shell_tmout"][0] == PASS
    facts["shell"]["tmout"] = 601
    assert statuses("host", facts)["shell_tmout"][0] == FAIL


@pytest.mark.parametrize(("schemes", "status"), [
    ([], PASS), (["yescrypt", "sha512"], PASS), (["gost-yescrypt"], PASS),
    (["sha256"], FAIL), (["md5"], FAIL), (["descrypt"], FAIL), (["bcrypt"], FAIL),
])
def test_existing_password_hashes(schemes: list[str], status: str) -> None:
    facts = passing_host()
    facts["accounts"]["password_hash_schemes"] = schemes
    facts["accounts"]["password_hash_by_account"] = {f"u{i}": s for i, s in enumerate(schemes)}
    result = next(r for r in evaluate_target("t", "host", CHECKS, facts).results
                  if r.id == "accounts_password_hashes_strong")
    assert result.status == status
    if schemes:  # which account has which scheme is shown, never deciding
        assert any(e.note and "u0" in str(e.found) for e in result.evidence)


def test_group_duplicates_and_gid0() -> None:
    facts = passing_host()
    facts["accounts"]["duplicate_group_names"] = ["staff"]
    assert statuses("host", facts)["accounts_unique_gid"][0] == FAIL
    facts = passing_host()
    facts["accounts"]["gid0_primary_accounts"] = ["ops", "root"]
    status, reason = statuses("host", facts)["accounts_gid0_only_root"]
    assert status == FAIL and "ops" in reason


def test_inactive_accounts_need_the_default_and_the_existing_accounts() -> None:
    facts = passing_host()
    facts["accounts"]["human_inactive_days_max"] = 99999  # an account made before the default
    assert statuses("host", facts)["accounts_inactive_disabled"][0] == FAIL
    facts["accounts"]["human_password_accounts"] = []
    facts["accounts"]["human_inactive_days_max"] = None
    assert statuses("host", facts)["accounts_inactive_disabled"][0] == PASS
    facts["accounts"]["inactive_default"] = -1
    assert statuses("host", facts)["accounts_inactive_disabled"][0] == FAIL


def test_an_aide_timer_on_disk_but_not_enabled_schedules_nothing() -> None:
    facts = passing_host()
    facts["aide"].update({"timer_enabled": False, "cron_entries": []})
    assert statuses("host", facts)["aide_check_scheduled"][0] == FAIL
    facts["aide"]["cron_entries"] = ["/etc/cron.d/aide"]
    assert statuses("host", facts)["aide_check_scheduled"][0] == PASS


def aide_exported(facts: dict) -> tuple[str, str, dict]:
    """aide_findings_exported's status, reason and evidence (fact → found)."""
    result = next(r for r in evaluate_target("t", "host", CHECKS, facts).results
                  if r.id == "aide_findings_exported")
    return result.status, result.reason, {e.fact: e.found for e in result.evidence}


def test_aide_findings_exported_on_a_converged_host_says_what_it_found() -> None:
    status, reason, found = aide_exported(passing_host())
    assert status == PASS
    assert found == {"aide.status_timer": "enabled", "aide.status_age_seconds": 412,
                     "aide.status_agent_readable": True,
                     "aide.status_access": "root:opsctl-monitor 0640, its directory "
                                           "root:opsctl-monitor 2750"}
    assert "root:opsctl-monitor 0640" in reason


@pytest.mark.parametrize(("change", "said"), [
    ({"status_timer": "disabled"}, "aide.status_timer is disabled, expected eq enabled"),
    ({"status_timer": "not-found"}, "aide.status_timer is not-found, expected eq enabled"),
    # the timer writes every quarter hour; OpsctlFileIntegrityCheckStale fires after an hour
    ({"status_age_seconds": 3601}, "aide.status_age_seconds is 3601, expected le 3600"),
    ({"status_age_seconds": None, "status_file": None, "status_access": None,
      "status_agent_readable": False,
      "status_problem": "/var/lib/opsctl-aide-status/status.json: absent"},
     "status: /var/lib/opsctl-aide-status/status.json: absent"),
    ({"status_agent_readable": False,
      "status_access": "root:root 0640, its directory root:opsctl-monitor 0750"},
     "status file (owner:group mode): root:root 0640, its directory root:opsctl-monitor 0750"),
])
def test_aide_findings_exported_fails_when_the_hosts_half_of_the_alarm_is_broken(
        change: dict, said: str) -> None:
    facts = passing_host()
    facts["aide"].update(change)
    status, reason, _ = aide_exported(facts)
    assert status == FAIL
    assert said in reason


def test_aide_findings_exported_at_the_hours_bound_still_passes() -> None:
    facts = passing_host()
    facts["aide"]["status_age_seconds"] = 3600
    assert aide_exported(facts)[0] == PASS


def test_aide_findings_exported_does_not_apply_without_aide() -> None:
    facts = passing_host()
    del facts["packages"]["installed"]["aide"]
    # the role's directory is there, the timer too; its service's condition skips every run
    facts["aide"].update({"status_timer": "enabled", "status_age_seconds": None,
                          "status_file": None, "status_access": None,
                          "status_agent_readable": False,
                          "status_problem": "/var/lib/opsctl-aide-status/status.json: absent"})
    status, reason, _ = aide_exported(facts)
    assert status == NA
    assert reason == ("AIDE is not installed (aide_installed), so there are no findings to "
                      "export; status: /var/lib/opsctl-aide-status/status.json: absent")
    assert intrusion_unit(facts).steps[1].status == NA


def intrusion_unit(facts: dict):
    target = evaluate_target("t", "host", CHECKS, facts)
    return next(u for u in target.units if u.unit == "L3-CES1-22")


def test_intrusion_alarm_stays_manual_when_the_hosts_half_is_in_place() -> None:
    unit = intrusion_unit(passing_host())
    assert unit.verdict == MANUAL  # 人工核查: whether the alert reaches a person
    alarm = unit.steps[1]
    assert (alarm.status, alarm.checks) == ("manual", {"aide_findings_exported": PASS})
    assert alarm.manual


def test_intrusion_alarm_fails_the_unit_when_the_hosts_half_is_broken() -> None:
    facts = passing_host()
    facts["aide"]["status_timer"] = "disabled"
    unit = intrusion_unit(facts)
    statuses_ = [PASS, PASS, PASS, FAIL]
    assert unit.verdict == verdict(statuses_, manual=True) == PARTIAL  # 部分符合
    assert unit.steps[0].status == PASS and unit.steps[1].status == FAIL
    # AIDE installed and nothing else in place: only aide_installed passes
    facts = failing_host()
    facts["packages"]["installed"]["aide"] = "0.18.3-1+deb12u3"
    unit = intrusion_unit(facts)
    assert unit.checks == {"aide_installed": PASS, "aide_database_recent": FAIL,
                           "aide_check_scheduled": FAIL, "aide_findings_exported": FAIL}
    assert unit.verdict == verdict(list(unit.checks.values()), manual=True) == PARTIAL
    # without AIDE, aide_installed fails, this check does not apply: 不符合
    unit = intrusion_unit(failing_host())
    assert unit.checks["aide_findings_exported"] == NA
    assert unit.verdict == NONCONFORM


@pytest.mark.parametrize("cid", ["no_world_writable_files", "no_world_readable_dumps"])
def test_an_unfinished_walk_never_passes(cid: str) -> None:
    facts = passing_host()
    facts["walk"]["complete"] = False
    facts["walk"]["covered"] = {"error": "the filesystem walk stopped at its 3 s bound"}
    status, reason = statuses("host", facts)[cid]
    assert status == ERROR and "stopped at its 3 s bound" in reason
    # what it did find still decides
    facts["walk"]["world_writable_files"] = ["/etc/cron.d/backup"]
    facts["walk"]["world_readable_dumps"] = ["/home/ops/x.sql"]
    assert statuses("host", facts)[cid][0] == FAIL


def test_nginx_without_ssl_protocols_offers_its_default_and_fails() -> None:
    from security import collector

    facts = passing_host()
    facts["nginx"].update({"ssl_protocols": list(collector.NGINX_DEFAULT_PROTOCOLS),
                           "ssl_protocols_set": False})
    status, reason = statuses("host", facts)["nginx_tls_protocols"]
    assert status == FAIL and "TLSv1.1" in reason


@pytest.mark.parametrize("cid", ["audit_kernel_cmdline", "swap_residual_cleared"])
def test_a_container_never_judges_the_machines_kernel_line_or_swap(cid: str) -> None:
    facts = failing_host()
    facts["system"]["container"] = "systemd-nspawn"
    result = next(r for r in evaluate_target("t", "host", CHECKS, facts).results if r.id == cid)
    assert (result.status, result.kind) == (NA, "not_tested")
    assert result.reason.endswith("container: systemd-nspawn")


def test_auth_events_logged_by_rsyslog_that_runs_or_a_persistent_journal() -> None:
    facts = passing_host()
    facts["services"]["rsyslog.service"]["active"] = "inactive"
    assert statuses("host", facts)["syslog_auth_logged"][0] == FAIL
    facts["rsyslog"]["journald_persistent"] = True
    assert statuses("host", facts)["syslog_auth_logged"][0] == PASS


def test_postgresql_audit_needs_every_cluster() -> None:
    facts = passing_host()
    facts["postgresql"]["log_statement"] = ["ddl", "none"]  # a second cluster logs nothing
    assert statuses("host", facts)["postgresql_audit_logging"][0] == FAIL
    facts["postgresql"]["log_statement"] = ["all", "mod"]
    assert statuses("host", facts)["postgresql_audit_logging"][0] == PASS


def test_etcd_and_patroni_checks_apply_where_they_are_installed() -> None:
    facts = passing_host()
    facts["etcd"]["installed"] = False
    facts["patroni"]["installed"] = False
    got = statuses("host", facts)
    assert got["etcd_tls_enabled"] == (NA, "etcd is not installed on this host")
    assert got["patroni_rest_tls_enabled"] == (NA, "Patroni is not installed on this host")


def _role_audit_rules() -> str:
    """The hardening role's rules file as loaded, in the shape `auditctl -l` prints them."""
    text = (ROLE / "templates" / "50-opsctl-hardening.rules.j2").read_text()
    rules = [line for line in text.splitlines() if line.startswith(("-a ", "-w "))]
    return "\n".join(r.replace(" -k ", " -F key=").replace("auid!=unset", "auid!=-1")
                     if r.startswith("-a ") else r for r in rules)


def test_the_roles_audit_rules_pass_every_audit_rules_check() -> None:
    facts = failing_host()
    facts["audit"].update({"kernel_available": True, "rules_text": _role_audit_rules()})
    got = statuses("host", facts)
    rule_checks = sorted(c.id for c in HOST if c.id.startswith("audit_rules_")
                         and c.id != "audit_rules_immutable")
    assert len(rule_checks) == 13
    assert {cid: got[cid] for cid in rule_checks if got[cid][0] != PASS} == {}


def test_every_result_carries_how_to_verify_it_by_hand() -> None:
    target = evaluate_target("t", "host", CHECKS, failing_host())
    for result in target.results:
        spec = _check(result.id).spec
        assert result.as_dict()["manual_verification"] == spec.manual_verification
