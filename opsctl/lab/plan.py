"""What a lab consists of, computed from a site: names, addresses, links, routes.

Pure: `lab up` creates what the plan lists, `lab down` removes what it lists, and
the plan is stored in the lab's state before anything is made, so a lab half made
by an interrupted `up` is torn down from the same list.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from opsctl.site.model import Site

IFNAMSIZ = 15
# Where the machine's own resolver and networks live: a lab must never take these.
FORBIDDEN = (ipaddress.IPv4Network("10.0.0.0/8"),)
CLIENT_HOST_NUMBER = 10


@dataclass(frozen=True)
class BridgePlan:
    zone: str
    name: str  # in the router's namespace
    router_address: str  # with prefix length


@dataclass(frozen=True)
class NodePlan:
    """A network namespace with one leg on a zone bridge: a host, or a client like `public`."""

    name: str
    netns: str
    zone: str
    address: str  # with prefix length
    gateway: str
    router_leg: str  # veth end in the router's namespace
    container: bool
    machine: str = ""


@dataclass(frozen=True)
class LabPlan:
    site: str
    tag: str
    router_netns: str
    control_link: str  # veth end in the machine's own namespace
    control_address: str  # with prefix length
    control_zone: str
    control_gateway: str
    bridges: list[BridgePlan] = field(default_factory=list)
    nodes: list[NodePlan] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)  # lab CIDRs routed via the router

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabPlan:
        data = dict(data)
        data["bridges"] = [BridgePlan(**b) for b in data.get("bridges", [])]
        data["nodes"] = [NodePlan(**n) for n in data.get("nodes", [])]
        return cls(**data)

    def hosts(self) -> list[NodePlan]:
        return [n for n in self.nodes if n.container]

    def node(self, name: str) -> NodePlan | None:
        return next((n for n in self.nodes if n.name == name), None)


def lab_tag(site_name: str) -> str:
    """A short stable tag that keeps the interface names of two labs apart."""
    return hashlib.sha1(site_name.encode()).hexdigest()[:6]


def _ifname(name: str) -> str:
    assert len(name) <= IFNAMSIZ, name
    return name


def plan_lab(site: Site) -> LabPlan:
    tag = lab_tag(site.name)
    prefix = f"opsctl-{site.name}"
    control_zone = site.control_zone()
    bridges = [
        BridgePlan(z.name, _ifname(f"br{i}"), f"{z.router_address}/{z.cidr.prefixlen}")
        for i, z in enumerate(site.zones.values())
    ]
    nodes = []
    for i, host in enumerate(site.hosts.values()):
        zone = site.zones[host.zone]
        nodes.append(NodePlan(
            name=host.name, netns=f"{prefix}-{host.name}", zone=zone.name,
            address=f"{host.address}/{zone.cidr.prefixlen}", gateway=str(zone.router_address),
            router_leg=_ifname(f"vh{i}"), container=True, machine=f"{prefix}-{host.name}",
        ))
    for zone in site.zones.values():
        if zone.managed:
            continue
        address = zone.cidr.network_address + CLIENT_HOST_NUMBER
        nodes.append(NodePlan(
            name=zone.name, netns=f"{prefix}-{zone.name}", zone=zone.name,
            address=f"{address}/{zone.cidr.prefixlen}", gateway=str(zone.router_address),
            router_leg=_ifname(f"vc{len(nodes)}"), container=False,
        ))
    return LabPlan(
        site=site.name, tag=tag, router_netns=f"{prefix}-{site.router_name}",
        control_link=_ifname(f"oc{tag}"),
        control_address=f"{site.control_address}/{control_zone.cidr.prefixlen}",
        control_zone=control_zone.name, control_gateway=str(control_zone.router_address),
        bridges=bridges, nodes=nodes,
        routes=[str(z.cidr) for z in site.zones.values() if z.name != control_zone.name],
    )


class PlanConflict(ValueError):
    """The site asks for a lab that a running one cannot become without `lab down`."""


def _same_node(a: NodePlan, b: NodePlan) -> bool:
    # The router's leg is a name the plan picks by position; a host listed before it in
    # hosts.yml moves it, and the running leg keeps its name.
    return replace(a, router_leg="") == replace(b, router_leg="")


def grow(stored: LabPlan, wanted: LabPlan) -> LabPlan:
    """The plan a running lab of `stored` becomes for a site that now wants `wanted`.

    Hosts the site added join with legs of their own. Hosts the site no longer has stay in
    the plan, as a retired server stays in its rack with its data: `lab down` still removes
    them. Anything else (a zone, an address, the control link) is a different topology.
    """
    if replace(stored, nodes=[]) != replace(wanted, nodes=[]):
        raise PlanConflict("its zones, router or control link differ")
    nodes = list(stored.nodes)
    for node in wanted.nodes:
        old = stored.node(node.name)
        if old is not None:
            if not _same_node(old, node):
                raise PlanConflict(f"host {node.name} moved ({old.zone} {old.address} -> "
                                   f"{node.zone} {node.address})")
            continue
        taken = next((n.name for n in nodes if n.address.split("/")[0]
                      == node.address.split("/")[0]), None)
        if taken:
            raise PlanConflict(f"new host {node.name} takes the address of {taken} "
                               f"({node.address.split('/')[0]})")
        legs = {n.router_leg for n in nodes}
        leg, i = node.router_leg, 0
        while leg in legs:
            leg, i = _ifname(f"{node.router_leg[:2]}{i}"), i + 1
        nodes.append(replace(node, router_leg=leg))
    return replace(stored, nodes=nodes)


def forbidden_overlaps(site: Site) -> list[str]:
    """Zones the lab cannot build: refuse these before lab up.

    Those that would take addresses the machine itself uses, and an internet zone
    (0.0.0.0/0): the lab puts a client namespace in every unmanaged zone and needs a
    concrete subnet for it (the reference site's public zone is 172.31.99.0/24).
    """
    internet = [f"zone {z.name} is the internet ({z.cidr}): the lab needs a concrete subnet "
                "for its client; give the zone one for the lab (like 172.31.99.0/24)"
                for z in site.zones.values() if z.internet]
    return internet + [
        f"zone {z.name} ({z.cidr}) overlaps {net}, which the lab must keep out of"
        for z in site.zones.values() if not z.internet
        for net in FORBIDDEN if z.cidr.overlaps(net)
    ]
