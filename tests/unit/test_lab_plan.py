"""The lab plan: names fit the kernel's limits and two labs never share a name."""

from __future__ import annotations

import pytest
import yaml

from opsctl.lab.image import debian_mirror
from opsctl.lab.plan import forbidden_overlaps, plan_lab
from opsctl.site import edit as site_edit
from opsctl.site import load_site


def test_reference_plan(tmp_path):
    plan = plan_lab(load_site("reference"))
    names = [n.router_leg for n in plan.nodes] + [b.name for b in plan.bridges]
    assert all(len(n) <= 15 for n in [*names, plan.control_link])
    assert len(set(names)) == len(names)
    assert {n.name for n in plan.hosts()} == {"mon1", "lb1", "app1", "app2", "db1", "db2", "bak1"}
    public = plan.node("public")
    assert public and not public.container and public.address == "172.31.99.10/24"
    assert plan.control_address == "172.31.10.1/24"
    # The machine gets routes to the other zones only, via the router's mgmt leg.
    assert sorted(plan.routes) == ["172.31.20.0/24", "172.31.30.0/24", "172.31.99.0/24"]
    assert plan.control_gateway == "172.31.10.254"


def test_two_sites_get_distinct_names(site_copy):
    data = yaml.safe_load((site_copy / "group_vars/all/site.yml").read_text())
    data["site"]["name"] = "province"
    (site_copy / "group_vars/all/site.yml").write_text(yaml.safe_dump(data, allow_unicode=True))
    a, b = plan_lab(load_site("reference")), plan_lab(load_site(site_copy))
    assert a.control_link != b.control_link
    assert not {n.netns for n in a.nodes} & {n.netns for n in b.nodes}


def test_lab_refuses_the_machine_resolver_range(site_copy):
    path = site_copy / "group_vars/all/site.yml"
    path.write_text(path.read_text().replace("172.31.99.0/24", "10.255.0.0/24"))
    assert forbidden_overlaps(load_site(site_copy)) == [
        "zone public (10.255.0.0/24) overlaps 10.0.0.0/8, which the lab must keep out of"]


def test_debian_mirror_is_read_from_apt_sources(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n"
        "Components: main\n\nTypes: deb\nURIs: http://security.example/\n"
        "Suites: bookworm-security\n")
    assert debian_mirror(tmp_path) == "http://mirror.example/debian"
    assert debian_mirror(tmp_path / "none") == "http://deb.debian.org/debian"


def test_flow_matrix_expectations_follow_the_whitelist():
    from opsctl.lab.flowcheck import matrix

    site = load_site("reference")
    probes = {(p.source.name, p.destination.name, p.port): p for p in matrix(site, plan_lab(site))}
    assert probes[("public", "lb1", 443)].expect_open
    assert probes[("public", "lb1", 443)].flow == "public-https"
    assert probes[("app1", "control", 3142)].expect_open
    for closed in [("public", "db1", 5432), ("app1", "mon1", 2222), ("lb1", "db1", 5432),
                   ("app1", "control", 2222), ("lb1", "app1", 2222),
                   ("public", "control", 3142)]:
        assert not probes[closed].expect_open, closed
    # every source probes every host and the control node on every whitelisted TCP port
    # (UDP has no handshake to probe: the time flow is not in the matrix)
    ports = {p for f in site.flows if f.proto == "tcp" for p in f.ports}
    assert 123 not in ports and any(f.proto == "udp" for f in site.flows)
    assert len(probes) == (1 + 1 + 7) * 8 * len(ports) - 7 * len(ports) - len(ports)


def test_a_running_lab_grows_by_the_hosts_the_site_adds_and_keeps_those_it_retires(site_copy):
    from opsctl import hosts
    from opsctl.lab.plan import grow

    before = plan_lab(load_site(site_copy))
    site = hosts.add(load_site(site_copy), "app3", "172.31.20.23", ["app"])
    after = grow(before, plan_lab(site))
    # the running hosts keep their legs, though app3 sits before db1 in hosts.yml
    assert after.nodes[:len(before.nodes)] == before.nodes
    app3 = after.node("app3")
    assert app3 and app3.address == "172.31.20.23/24" and app3.container
    legs = [n.router_leg for n in after.nodes]
    assert len(set(legs)) == len(legs) and all(len(leg) <= 15 for leg in legs)
    # retired: out of the site, still in the lab (its data stays) until `lab down`
    site = site_edit.edit_hosts(site, site_edit.remove_hosts(["app2"]))
    assert grow(after, plan_lab(site)) == after


def test_a_lab_cannot_become_a_different_topology(site_copy):
    from opsctl import hosts
    from opsctl.lab.plan import PlanConflict, grow

    before = plan_lab(load_site(site_copy))
    path = site_copy / "hosts.yml"
    path.write_text(path.read_text().replace("172.31.30.12", "172.31.30.19"))
    with pytest.raises(PlanConflict, match="host db2 moved"):
        grow(before, plan_lab(load_site(site_copy)))
    path.write_text(path.read_text().replace("172.31.30.19", "172.31.30.12"))
    site = site_edit.edit_hosts(load_site(site_copy), site_edit.remove_hosts(["app2"]))
    site = hosts.add(site, "app3", "172.31.20.22", ["app"])  # the retired app2's address
    with pytest.raises(PlanConflict, match="app3 takes the address of app2"):
        grow(before, plan_lab(site))
