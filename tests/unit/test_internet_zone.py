"""The public zone may be the internet (`cidr: any` or 0.0.0.0/0) when it is unmanaged."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from opsctl.errors import InvalidInput
from opsctl.lab.plan import forbidden_overlaps
from opsctl.network.flows import allows, boundary_rules, inbound_rules
from opsctl.network.nftables import boundary_ruleset, rule_line
from opsctl.site import load_site

A = ipaddress.IPv4Address
REF_PUBLIC = "172.31.99.0/24"


def internet_site(site_copy: Path, cidr: str = "any"):
    path = site_copy / "group_vars/all/site.yml"
    path.write_text(path.read_text().replace(REF_PUBLIC, cidr))
    return load_site(site_copy)


@pytest.mark.parametrize("cidr", ["any", "0.0.0.0/0"])
def test_an_unmanaged_zone_may_be_the_internet(site_copy, cidr):
    site = internet_site(site_copy, cidr)
    assert site.zones["public"].cidr == ipaddress.IPv4Network("0.0.0.0/0")
    assert site.zones["public"].internet
    # the most specific zone wins: site addresses stay in their own zones
    assert site.zone_of(site.hosts["lb1"].address).name == "internet"
    assert site.zone_of(A("8.8.8.8")).name == "public"
    assert site.control_zone().name == "mgmt"


def test_a_managed_zone_may_not_be_the_internet(site_copy):
    path = site_copy / "group_vars/all/site.yml"
    path.write_text(path.read_text().replace("172.31.30.0/24", "any"))
    with pytest.raises(InvalidInput) as exc:
        load_site(site_copy)
    assert any("site.zones.secure" in line and "only an unmanaged zone" in line
               for line in exc.value.lines()), exc.value.lines()


def test_real_overlaps_are_still_rejected_next_to_an_internet_zone(site_copy):
    path = site_copy / "group_vars/all/site.yml"
    path.write_text(path.read_text().replace(REF_PUBLIC, "any")
                    .replace("172.31.30.0/24", "172.31.20.0/23"))
    with pytest.raises(InvalidInput) as exc:
        load_site(site_copy)
    lines = exc.value.lines()
    assert any("site.zones.secure.cidr" in line and "overlaps zone internet" in line
               for line in lines), lines
    assert not any("overlaps zone public" in line or "public" in line.split(":")[1]
                   for line in lines), lines


def test_internet_rules_match_only_addresses_outside_the_site(site_copy):
    site = internet_site(site_copy)
    rules = boundary_rules(site)
    lb = site.hosts["lb1"].address
    assert allows(rules, A("203.0.113.7"), lb, "tcp", 443) == "public-https"
    # inside the site "public" does not mean everyone: app1 may not reach lb:443 through it
    assert allows(rules, site.hosts["app1"].address, lb, "tcp", 443) is None
    assert allows(rules, A("203.0.113.7"), site.hosts["db1"].address, "tcp", 5432) is None


def test_nftables_renders_the_internet_as_not_the_site(site_copy):
    site = internet_site(site_copy)
    ruleset = boundary_ruleset(boundary_rules(site))
    line = next(x for x in ruleset.splitlines() if 'flow public-https"' in x)
    assert "ip saddr != { 172.31.10.0/24, 172.31.20.0/24, 172.31.30.0/24 }" in line
    assert "0.0.0.0/0" not in ruleset
    # the load balancer's own firewall says the same
    host = [rule_line(r) for r in inbound_rules(site, "lb1") if r.flow == "public-https"]
    assert host and host[0].startswith("ip saddr != {")


def test_the_lab_refuses_an_internet_zone_up_front(site_copy):
    problems = forbidden_overlaps(internet_site(site_copy))
    assert len(problems) == 1
    assert "zone public is the internet (0.0.0.0/0)" in problems[0]
    assert "concrete subnet" in problems[0]


def test_lab_up_on_an_internet_site_is_one_line_and_exit_2(site_copy, state_dir, capsys):
    from opsctl.cli.main import main

    internet_site(site_copy)
    with pytest.raises(SystemExit) as exc:
        main(["lab", "up", "--site", str(site_copy)])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and "is the internet" in lines[0], err
    assert "Traceback" not in err


def test_the_reference_site_keeps_its_lab_public_zone():
    site = load_site("reference")
    assert str(site.zones["public"].cidr) == REF_PUBLIC
    assert not site.zones["public"].internet
    assert forbidden_overlaps(site) == []
