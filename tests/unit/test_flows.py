"""The flow whitelist resolved to addresses: what the firewalls will let through."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess

import pytest

from opsctl.network.flows import allows, boundary_rules, inbound_rules
from opsctl.network.nftables import boundary_ruleset
from opsctl.site import load_site

A = ipaddress.IPv4Address
PUBLIC_CLIENT = A("172.31.99.10")


@pytest.fixture(scope="module")
def site():
    return load_site("reference")


def addr(site, host):
    return site.hosts[host].address


@pytest.mark.parametrize(("src", "dst", "port", "flow"), [
    (PUBLIC_CLIENT, "lb1", 443, "public-https"),
    ("lb1", "app2", 8080, "lb-app"),
    ("app1", "db1", 5432, "app-db"),
    ("db1", "bak1", 2222, "db-backup"),
    ("mon1", "db2", 9110, "mgmt-agent"),
    (A("172.31.10.1"), "bak1", 2222, "mgmt-ssh"),
])
def test_whitelisted_flows_are_allowed(site, src, dst, port, flow):
    src = addr(site, src) if isinstance(src, str) else src
    assert allows(boundary_rules(site), src, addr(site, dst), "tcp", port) == flow


@pytest.mark.parametrize(("src", "dst", "port"), [
    (PUBLIC_CLIENT, "db1", 5432),
    ("app1", "mon1", 2222),
    ("lb1", "db1", 5432),
    (PUBLIC_CLIENT, "lb1", 2222),
    ("app1", "lb1", 443),
    # pgBackRest's TLS server port: the repository is reached over SSH, nothing listens there
    ("db1", "bak1", 8432),
])
def test_forbidden_flows_are_not(site, src, dst, port):
    src = addr(site, src) if isinstance(src, str) else src
    assert allows(boundary_rules(site), src, addr(site, dst), "tcp", port) is None


def test_internet_zone_reaches_mgmt_only_at_the_mirror(site):
    rules = boundary_rules(site)
    control = site.control_address
    for host in ("lb1", "app1", "app2"):
        for target, port in [(control, 22), (control, 3142), (addr(site, "mon1"), 2222),
                             (addr(site, "mon1"), 9090), (addr(site, "mon1"), 9110)]:
            allowed = allows(rules, addr(site, host), target, "tcp", port)
            assert (allowed is not None) == (target == control and port == 3142), (host, target)


def test_host_inbound_rules_name_only_flows_to_that_host(site):
    db1 = {r.flow for r in inbound_rules(site, "db1")}
    assert db1 == {"app-db", "db-replication", "backup-db", "mgmt-ssh", "mgmt-agent",
                   "dcs", "db-dcs", "db-patroni", "mgmt-patroni"}
    lb1 = {r.flow for r in inbound_rules(site, "lb1")}
    assert lb1 == {"public-https", "mgmt-ssh", "mgmt-agent"}
    for rule in inbound_rules(site, "db1"):
        assert rule.destinations == (ipaddress.IPv4Network("172.31.30.11/32"),)


def test_boundary_ruleset_drops_and_counts_what_is_not_whitelisted(site):
    text = boundary_ruleset(boundary_rules(site))
    forward = text.split("chain forward")[1].split("chain input")[0]
    assert "policy drop;" in forward
    last_rule = [line for line in forward.splitlines() if line.strip() not in ("", "}")][-1]
    assert "counter" in last_rule and last_rule.strip().split()[-4] == "drop"
    assert text.count('comment "flow ') == len(site.flows)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft"), reason="nft -c needs root")
def test_boundary_ruleset_is_valid_nftables(site):
    result = subprocess.run(["nft", "-c", "-f", "-"], input=boundary_ruleset(boundary_rules(site)),
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_the_control_nodes_bridge_port_admits_only_flows_to_the_control_node():
    from opsctl.network.nftables import control_port_ruleset

    site = load_site("reference")
    text = control_port_ruleset(boundary_rules(site), site.control_address)
    accepts = [line for line in text.splitlines() if "accept comment" in line]
    assert len(accepts) == 1 and "tcp dport 3142" in accepts[0]
    assert 'flow mirror' in accepts[0]
    assert 'oifname "ctl" ip daddr 172.31.10.1 tcp flags & (syn | ack) == syn counter drop' in text
