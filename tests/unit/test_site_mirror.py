"""site.mirror: where the offline mirror is served, validated against hosts, zones and flows."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from mirror_fixtures import MIRROR_FLOW, with_mirror

from opsctl.check.netfacts import site_facts
from opsctl.errors import InvalidInput
from opsctl.site.model import load_site


def problems(site: Path) -> list[str]:
    with pytest.raises(InvalidInput) as exc:
        load_site(site)
    return exc.value.lines()


def test_without_the_section_the_control_node_serves_it():
    site = load_site("reference")
    place = site.mirror
    assert place.host is None and place.path is None
    assert site.mirror_url == "http://172.31.10.1:3142/"
    assert not site.mirror.tls  # the lab's control node serves plain HTTP
    assert place.as_vars()["local_url"] == ""
    assert site_facts(site)["mirror_in_mgmt"] is True


def test_a_mirror_host_gets_its_address_and_defaults(site_copy):
    with_mirror(site_copy, {"host": "mon1"})
    site = load_site(site_copy)
    assert site.mirror.host == "mon1"
    assert site.mirror.address == ipaddress.IPv4Address("172.31.10.11")
    assert site.mirror.port == 3142
    assert site.mirror.path == "/srv/opsctl-mirror"
    # A host of the site serves it over TLS with its site certificate.
    assert site.mirror_url == "https://172.31.10.11:3142/"
    assert site.mirror.tls
    assert site.mirror.local_url == "file:/srv/opsctl-mirror/"
    # The lab's own server keeps the control node's port.
    assert site.mirror_port == 3142


def test_port_and_path_are_the_sites(site_copy):
    flow = {**MIRROR_FLOW, "ports": [8080]}
    with_mirror(site_copy, {"host": "mon1", "port": 8080, "path": "/data/mirror"}, flow=flow)
    site = load_site(site_copy)
    assert site.mirror_url == "https://172.31.10.11:8080/"
    assert site.mirror.as_vars() == {
        "host": "mon1", "address": "172.31.10.11", "port": 8080, "path": "/data/mirror",
        "url": "https://172.31.10.11:8080/", "local_url": "file:/data/mirror/", "tls": True}


def test_the_mirror_host_facts_follow_it(site_copy):
    with_mirror(site_copy, {"host": "mon1"})
    facts = site_facts(load_site(site_copy))
    assert facts["mirror_in_mgmt"] is True
    assert 3142 not in facts["mgmt_inbound_other_ports"]


def test_unknown_host(site_copy):
    with_mirror(site_copy, {"host": "mirror9"})
    lines = problems(site_copy)
    assert len(lines) == 1
    assert lines[0].endswith("site.yml: site.mirror.host: unknown host 'mirror9' (a host of "
                             "hosts.yml in zone mgmt)")


def test_host_outside_the_control_nodes_zone(site_copy):
    with_mirror(site_copy, {"host": "db1"}, flow={**MIRROR_FLOW, "to": "db_primary"})
    lines = problems(site_copy)
    assert len(lines) == 1
    assert "site.mirror.host: db1 is in zone secure; the mirror is served from the control " \
           "node's zone (mgmt)" in lines[0]


def test_no_flow_to_the_mirror_host(site_copy):
    with_mirror(site_copy, {"host": "mon1"}, flow=None)
    lines = problems(site_copy)
    assert len(lines) == 1
    assert "site.yml: site.mirror.host: no flow lets zone(s) internet, secure reach " \
           "mon1:3142 (add to site.flows: {name: mirror, from: all, to: <a group holding " \
           "mon1>, ports: [3142]})" in lines[0]


def test_a_flow_from_some_zones_only_names_the_others(site_copy):
    with_mirror(site_copy, {"host": "mon1"}, flow={**MIRROR_FLOW, "from": "internet"})
    lines = problems(site_copy)
    assert len(lines) == 1 and "no flow lets zone(s) secure reach mon1:3142" in lines[0]


def test_a_flow_on_another_port_does_not_count(site_copy):
    with_mirror(site_copy, {"host": "mon1", "port": 8080})
    assert "reach mon1:8080" in problems(site_copy)[0]


@pytest.mark.parametrize(("mirror", "key"), [
    ({"host": "mon1", "port": 0}, "site.mirror.port"),
    ({"host": "mon1", "path": "relative/dir"}, "site.mirror.path"),
    ({"host": "mon1", "path": "/srv/../etc"}, "site.mirror.path"),
    ({"host": "mon1", "path": "/srv/mirror/"}, "site.mirror.path"),
    ({"host": "mon1", "url": "http://x/"}, "site.mirror.url"),
    ({"port": 3142}, "site.mirror.host"),
])
def test_bad_values_name_the_key(site_copy, mirror, key):
    with_mirror(site_copy, mirror)
    lines = problems(site_copy)
    assert any(f"site.yml: {key}: " in line for line in lines), lines


def test_a_province_made_from_a_site_with_a_mirror_host_keeps_it_renamed(site_copy, tmp_path):
    from opsctl.site.new import new_site

    with_mirror(site_copy, {"host": "mon1", "port": 3142})
    made = new_site("gansu", source=str(site_copy), cidr_base="172.31.200.0/22",
                    inventory_root=tmp_path / "inventory")
    site = load_site(made.directory)
    assert site.mirror.host == "gansu-mon1"
    assert site.mirror_url == f"https://{site.hosts['gansu-mon1'].address}:3142/"
