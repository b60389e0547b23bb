"""Honest network verdicts: the policy is judged from the site model, the enforced state only
from probes. Without probes no check of the enforced state passes."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsctl.check.netfacts import NOT_PROBED, network_facts
from opsctl.site.model import load_site
from security.evaluate import ERROR, FAIL, PASS, evaluate_target
from security.schema import load_catalog

ROOT = Path(__file__).resolve().parents[2]
CHECKS = load_catalog()
NETWORK = {c.id: c for c in CHECKS if c.spec.scope == "network"}

# Checks that claim what the boundary and host firewalls actually let through.
ENFORCED = {
    "net_boundary_default_deny", "net_probes_allowed_flows_work",
    "net_probes_no_unexpected_open", "net_ssh_only_from_mgmt", "net_agent_only_from_mgmt",
    "net_public_reaches_only_lb", "net_secure_not_reachable_from_public",
    "net_secure_exposure_minimal", "net_mgmt_zone_isolated",
}
# Checks of the policy document: the site model is their evidence.
POLICY = set(NETWORK) - ENFORCED
PUBLIC = {"net_public_reaches_only_lb", "net_secure_not_reachable_from_public"}


@pytest.fixture(scope="module")
def site():
    return load_site(str(ROOT / "inventory" / "reference"))


def results(facts: dict) -> dict:
    return {r.id: r for r in evaluate_target("t", "network", CHECKS, facts).results}


def probe(src: str, dst: str, port: int, expect: str, outcome: str) -> dict:
    return {"from": src, "to": dst, "port": port, "expect": expect, "outcome": outcome}


GOOD = [probe("public", "lb1", 443, "open", "connected"),
        probe("public", "db1", 5432, "closed", "timeout"),
        probe("app1", "db1", 5432, "open", "connected"),
        probe("app1", "mon1", 2222, "closed", "timeout"),
        probe("mon1", "db1", 2222, "open", "connected")]


def test_every_network_check_is_classified():
    assert set(NETWORK) >= ENFORCED
    for cid in ENFORCED:
        assert "probes" in NETWORK[cid].spec.collect, cid
    for cid in POLICY:
        assert NETWORK[cid].spec.collect == ["site"], cid


def test_without_probes_no_check_of_the_enforced_state_passes(site):
    got = results(network_facts(site))
    for cid in ENFORCED:
        assert got[cid].status == ERROR, (cid, got[cid])
        assert NOT_PROBED in got[cid].reason, got[cid].reason


def test_policy_checks_say_they_judge_the_site_model(site):
    got = results(network_facts(site))
    for cid in POLICY:
        assert got[cid].status == PASS, (cid, got[cid])
        assert all(e.where.startswith("from the site model") for e in got[cid].evidence), cid


def test_probes_that_match_the_whitelist_pass_every_check(site):
    got = results(network_facts(site, GOOD))
    assert {cid for cid, r in got.items() if r.status != PASS} == set()
    count = next(e for e in got["net_probes_no_unexpected_open"].evidence
                 if e.fact == "probes.count")
    assert count.found == len(GOOD)


def test_a_forbidden_probe_that_connected_fails_with_its_label(site):
    probes = [*GOOD, probe("app1", "db2", 2222, "closed", "connected")]
    got = results(network_facts(site, probes))
    label = "app1 -> db2:2222 (connected)"
    for cid in ("net_boundary_default_deny", "net_probes_no_unexpected_open",
                "net_ssh_only_from_mgmt"):
        assert got[cid].status == FAIL, cid
        assert any(e.found == [label] for e in got[cid].evidence), got[cid].evidence
    assert got["net_agent_only_from_mgmt"].status == PASS


def test_a_refused_forbidden_probe_crossed_the_firewalls(site):
    # A reset comes from the destination's stack: no firewall dropped the SYN.
    probes = [*GOOD, probe("public", "db1", 5432, "closed", "refused")]
    got = results(network_facts(site, probes))
    assert got["net_secure_not_reachable_from_public"].status == FAIL
    assert got["net_public_reaches_only_lb"].status == FAIL


def test_an_allowed_flow_that_failed_fails(site):
    probes = [*GOOD, probe("mon1", "db2", 9110, "open", "timeout")]
    got = results(network_facts(site, probes))
    assert got["net_probes_allowed_flows_work"].status == FAIL
    assert got["net_agent_only_from_mgmt"].status == FAIL
    assert "mon1 -> db2:9110 (timeout)" in got["net_probes_allowed_flows_work"].reason


def test_public_not_probed_on_a_real_site_leaves_its_checks_in_error(site):
    probes = [p for p in GOOD if p["from"] != "public"]
    why = "no site host stands in an unmanaged zone: probe it from outside (manual)"
    got = results(network_facts(site, probes, {"public": why}))
    for cid in PUBLIC:
        assert got[cid].status == ERROR, cid
        assert "not probed from public" in got[cid].reason
    assert {cid for cid in ENFORCED - PUBLIC if got[cid].status != PASS} == set()


def test_an_unreachable_host_makes_a_clean_result_incomplete_not_a_pass(site):
    got = results(network_facts(site, GOOD, {"db2": "unreachable: ssh timed out"}))
    assert got["net_ssh_only_from_mgmt"].status == ERROR
    assert "not probed from db2" in got["net_ssh_only_from_mgmt"].reason
    # ...but what did run can still prove a failure
    bad = [*GOOD, probe("app1", "db2", 2222, "closed", "connected")]
    got = results(network_facts(site, bad, {"db2": "unreachable"}))
    assert got["net_ssh_only_from_mgmt"].status == FAIL
