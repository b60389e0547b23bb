"""`opsctl site new NAME --from SOURCE`: a province's copy of a site's topology.

Same zones, groups, flows and host numbers; new host names (`PREFIX-host`), new address
ranges (consecutive blocks carved from a base network, in the source's zone order), and
the uplink to the national node's access gateway as an external endpoint and a flow. The
result is validated like any site before a file is written; nothing is written on error.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from opsctl.errors import InvalidInput, Problem
from opsctl.paths import project_root
from opsctl.site.model import Site, load_site
from opsctl.site.schema import NAME
from opsctl.site.yamlfile import read_mapping

Network = ipaddress.IPv4Network
# Where lab sites live by default; provinces get blocks of it that no site uses yet.
DEFAULT_POOL = ipaddress.IPv4Network("172.31.0.0/16")
FORBIDDEN = ipaddress.IPv4Network("10.0.0.0/8")
UPLINK_PORTS = [443]


@dataclass(frozen=True)
class NewSite:
    name: str
    directory: Path
    hosts: dict[str, str]  # new name -> address
    zones: dict[str, str]  # zone -> cidr


def _problem(key: str, reason: str) -> InvalidInput:
    return InvalidInput([Problem("opsctl site new", key, reason)])


def zone_plan(source: Site, base: Network) -> dict[str, Network]:
    """Each zone of the source, in address order, gets the next block of its size in base."""
    plan: dict[str, Network] = {}
    cursor = int(base.network_address)
    for zone in sorted(source.zones.values(), key=lambda z: int(z.cidr.network_address)):
        size = zone.cidr.num_addresses
        cursor = (cursor + size - 1) // size * size  # align to the block's own size
        block = ipaddress.IPv4Network(f"{ipaddress.IPv4Address(cursor)}/{zone.cidr.prefixlen}")
        if not (block.subnet_of(base)):
            raise _problem("--cidr-base", f"{base} is too small for the {len(source.zones)} zones "
                           f"of site {source.name}")
        plan[zone.name] = block
        cursor += size
    return plan


def used_networks(inventory_root: Path) -> list[Network]:
    used = []
    for site_file in sorted(inventory_root.glob("*/group_vars/all/site.yml")):
        try:
            zones = (read_mapping(site_file).get("site") or {}).get("zones") or {}
        except InvalidInput:
            continue
        for zone in zones.values():
            try:
                used.append(ipaddress.IPv4Network(str(zone.get("cidr"))))
            except (ValueError, AttributeError):
                continue
    return used


def free_base(source: Site, used: list[Network], pool: Network = DEFAULT_POOL) -> Network:
    """The highest block of the pool big enough for the source's zones that no site uses."""
    need = sum(z.cidr.num_addresses for z in source.zones.values())
    prefix = 32 - max(need - 1, 1).bit_length()
    for candidate in reversed(list(pool.subnets(new_prefix=prefix))):
        if not any(candidate.overlaps(u) for u in used):
            return candidate
    raise _problem("--cidr-base", f"no free block of /{prefix} left in {pool}; give --cidr-base")


def _move(address: ipaddress.IPv4Address, old: Network, new: Network) -> ipaddress.IPv4Address:
    return new.network_address + (int(address) - int(old.network_address))


def _rename_hosts(node: Any, names: dict[str, str]) -> Any:
    """Walk an inventory tree and rename host keys under every `hosts:`."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "hosts" and isinstance(value, dict):
            out[key] = {names.get(h, h): v for h, v in value.items()}
        else:
            out[key] = _rename_hosts(value, names)
    return out


def _readdress(node: Any, new_addresses: dict[str, str]) -> Any:
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "hosts" and isinstance(value, dict):
            out[key] = {h: ({**v, "ansible_host": new_addresses[h]}
                            if isinstance(v, dict) and "ansible_host" in v else v)
                        for h, v in value.items()}
        else:
            out[key] = _readdress(value, new_addresses)
    return out


def derive(source: Site, name: str, base: Network, prefix: str,
           national_gateway: Network | None) -> tuple[dict, dict, dict[str, str]]:
    """The new hosts.yml and site.yml contents (pure), and the host renaming."""
    zones = zone_plan(source, base)
    names = {h: f"{prefix}-{h}" for h in source.hosts}
    addresses = {names[h.name]: str(_move(h.address, source.zones[h.zone].cidr, zones[h.zone]))
                 for h in source.hosts.values()}
    hosts_data = _readdress(_rename_hosts(read_mapping(source.inventory_file), names), addresses)

    site_data = read_mapping(source.directory / "group_vars" / "all" / "site.yml")
    spec = dict(site_data["site"])
    spec["name"] = name
    spec["title"] = f"{name}: provincial node replicating {source.name}"
    spec["zones"] = {z: {**spec["zones"][z], "cidr": str(zones[z])} for z in spec["zones"]}
    control_zone = source.control_zone()
    spec["control"] = {**spec["control"], "address": str(
        _move(source.control_address, control_zone.cidr, zones[control_zone.name]))}
    # Whose uploads the access gateway expects is the national node's list, not a province's:
    # copied, every province would count as silent on the province's own node after a day.
    # Empty rather than absent: the site's own configuration may read it.
    if "provinces" in spec:
        spec["provinces"] = {}
    if isinstance(spec.get("mirror"), dict) and spec["mirror"].get("host") in names:
        spec["mirror"] = {**spec["mirror"], "host": names[spec["mirror"]["host"]]}
    if national_gateway is not None:
        spec["external"] = {**spec.get("external", {}), "national": {
            "cidr": str(national_gateway),
            "purpose": f"the national node's access gateway ({source.name})"}}
        spec["flows"] = [*spec.get("flows", []), {
            "name": "uplink-national", "from": ["app", "monitoring"], "to": "national",
            "ports": UPLINK_PORTS,
            "why": "the province uploads its incremental data, and its Prometheus pushes its "
                   "alerts, to the national access gateway"}]
    return hosts_data, {"site": spec}, names


def _gateway(source: Site, given: str | None) -> Network | None:
    if given == "none":
        return None
    if given is None:
        lb = sorted(source.groups.get("lb", ()))
        return ipaddress.IPv4Network(f"{source.hosts[lb[0]].address}/32") if lb else None
    try:
        return ipaddress.IPv4Network(given if "/" in given else f"{given}/32")
    except ValueError:
        raise _problem("--national-gateway", f"{given!r} is not an address or network") from None


def new_site(name: str, source: str = "reference", cidr_base: str | None = None,
             host_prefix: str | None = None, national_gateway: str | None = None,
             inventory_root: Path | None = None) -> NewSite:
    root = inventory_root or project_root() / "inventory"
    if not re.match(NAME, name):
        raise _problem("NAME", f"{name!r} must match {NAME}")
    target = root / name
    if target.exists():
        raise _problem("NAME", f"{target} already exists")
    prefix = host_prefix or name
    if not re.match(r"^[a-z][a-z0-9]{0,15}$", prefix):
        raise _problem("--host-prefix", f"{prefix!r} must be lower-case letters and digits, "
                       "starting with a letter, at most 16")
    origin = load_site(source)
    if cidr_base is None:
        base = free_base(origin, used_networks(root))
    else:
        try:
            base = ipaddress.IPv4Network(cidr_base)
        except ValueError as exc:
            raise _problem("--cidr-base", f"{cidr_base!r}: {exc}") from None
    if base.overlaps(FORBIDDEN):
        raise _problem("--cidr-base", f"{base} overlaps 10.0.0.0/8 (the machine's resolver "
                       "network); use 172.16.0.0/12 or 192.168.0.0/16")
    taken = [u for u in used_networks(root) if base.overlaps(u)]
    if cidr_base is not None and taken:
        raise _problem("--cidr-base", f"{base} overlaps {taken[0]}, used by another site")
    hosts_data, site_data, _names = derive(origin, name, base, prefix,
                                           _gateway(origin, national_gateway))
    with tempfile.TemporaryDirectory(prefix=f"opsctl-site-{name}-") as tmp:
        staged = Path(tmp) / name
        _write(staged, hosts_data, site_data, origin.name)
        made = load_site(staged)  # validates; InvalidInput leaves nothing behind
        root.mkdir(parents=True, exist_ok=True)
        shutil.copytree(staged, target)
    return NewSite(name, target, {h.name: str(h.address) for h in made.hosts.values()},
                   {z.name: str(z.cidr) for z in made.zones.values()})


class _Dumper(yaml.SafeDumper):
    """Lists indented under their key, as ansible-lint's yaml rule (and the reference) has it."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _dump(data: dict) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


def _write(directory: Path, hosts_data: dict, site_data: dict, source: str) -> None:
    (directory / "group_vars" / "all").mkdir(parents=True)
    header = (f"# Made by `opsctl site new` from site {source}: same topology, this site's\n"
              "# names and addresses. Edit freely; `opsctl site validate` checks it.\n")
    (directory / "hosts.yml").write_text(
        header + _dump(hosts_data))
    (directory / "group_vars" / "all" / "site.yml").write_text(
        header + _dump(site_data))
