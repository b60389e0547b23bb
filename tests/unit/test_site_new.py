"""`opsctl site new`: a province's copy validates, keeps the topology, and refuses bad input
without writing anything."""

from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path

import pytest
import yaml

from opsctl.cli.main import main
from opsctl.site import load_site
from opsctl.site.new import free_base, new_site, used_networks

ROOT = Path(__file__).resolve().parents[2]


def run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def test_a_province_keeps_the_topology_with_its_own_names_and_addresses(tmp_path):
    made = new_site("gansu", cidr_base="172.31.200.0/22", inventory_root=tmp_path)
    site, reference = load_site(made.directory), load_site("reference")
    assert sorted(site.hosts) == sorted(f"gansu-{h}" for h in reference.hosts)
    assert {z: str(site.zones[z].cidr) for z in site.zones} == {
        "mgmt": "172.31.200.0/24", "internet": "172.31.201.0/24",
        "secure": "172.31.202.0/24", "public": "172.31.203.0/24"}
    assert str(site.hosts["gansu-db1"].address) == "172.31.202.11"
    assert str(site.control_address) == "172.31.200.1"
    assert site.groups["db_primary"] == {"gansu-db1"}
    assert {f.name for f in reference.flows} < {f.name for f in site.flows}
    uplink = next(f for f in site.flows if f.name == "uplink-national")
    assert uplink.sources == ("app", "monitoring") and uplink.destinations == ("national",)
    assert str(site.spec.external["national"].cidr) == "172.31.20.11/32"  # reference's lb1
    # the national node's list of uploading provinces is not the province's own; the key
    # stays (empty): Ansible reads the raw file, and the gateway's configuration names it
    assert reference.spec.provinces and site.spec.provinces == {}
    raw = yaml.safe_load((made.directory / "group_vars" / "all" / "site.yml").read_text())
    assert raw["site"]["provinces"] == {}


def test_the_default_base_avoids_every_sites_ranges(tmp_path):
    reference = load_site("reference")
    first = new_site("gansu", inventory_root=tmp_path)
    second = new_site("hunan", host_prefix="hn", inventory_root=tmp_path)
    nets = [ipaddress.IPv4Network(c) for m in (first, second) for c in m.zones.values()]
    nets += [z.cidr for z in reference.zones.values()]
    assert all(not a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:])
    assert sorted(second.hosts)[0].startswith("hn-")
    base = free_base(reference, used_networks(tmp_path) + [z.cidr for z in
                                                         reference.zones.values()])
    assert base.prefixlen == 22


@pytest.mark.parametrize(("args", "message"), [
    (["--cidr-base", "10.20.0.0/16"], "overlaps 10.0.0.0/8"),
    (["--cidr-base", "172.31.200.0/25"], "too small"),
    (["--cidr-base", "not-a-net"], "--cidr-base: 'not-a-net'"),
    (["--host-prefix", "Bad_Prefix"], "--host-prefix"),
    (["--national-gateway", "nowhere"], "--national-gateway"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(capsys, state_dir, tmp_path,
                                                        monkeypatch, args, message):
    monkeypatch.setenv("OPSCTL_ROOT", str(tmp_path))
    shutil.copytree(ROOT / "inventory" / "reference", tmp_path / "inventory" / "reference")
    before = sorted(p.name for p in (tmp_path / "inventory").iterdir())
    code, _, err = run(capsys, "site", "new", "gansu", *args)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in (tmp_path / "inventory").iterdir()) == before


def test_an_existing_site_is_not_overwritten(tmp_path):
    new_site("gansu", cidr_base="172.31.200.0/22", inventory_root=tmp_path)
    with pytest.raises(Exception, match="already exists"):
        new_site("gansu", cidr_base="172.31.204.0/22", inventory_root=tmp_path)
