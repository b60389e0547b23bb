"""Every check against recorded facts: a passing host, a failing host, and the real control node."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from security_fixtures import failing_host, passing_host, recorded

from opsctl.check.netfacts import network_facts
from opsctl.site.model import load_site
from security.evaluate import ERROR, FAIL, NA, PASS, evaluate_target
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


def test_every_host_check_fails_on_the_neglected_host() -> None:
    got = statuses("host", failing_host())
    wrong = {k: v for k, v in got.items() if v[0] != FAIL and k not in COLLECTOR_ONLY}
    assert not wrong, wrong
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
             if any(e.note and e.fact.startswith("services.") for e in r.evidence)}
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
