"""Resolve flow endpoints (groups, zones, `all`, `control`) into addresses."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from opsctl.site.model import Flow, Site

Network = ipaddress.IPv4Network


@dataclass(frozen=True)
class Rule:
    """One accepted flow as addresses: what the firewalls actually match."""

    flow: str
    sources: tuple[Network, ...]
    destinations: tuple[Network, ...]
    proto: str
    ports: tuple[int, ...]
    why: str


def endpoint_networks(site: Site, endpoint: str) -> tuple[Network, ...]:
    if endpoint == "control":
        return (ipaddress.IPv4Network(f"{site.control_address}/32"),)
    if endpoint in site.spec.external:
        return (site.spec.external[endpoint].cidr,)
    if endpoint in site.zones and endpoint not in site.groups:
        return (site.zones[endpoint].cidr,)
    if endpoint in site.zones:
        # A zone group: the whole zone (unmanaged addresses in it, like the control node, too).
        return (site.zones[endpoint].cidr,)
    return tuple(ipaddress.IPv4Network(f"{h.address}/32") for h in site.hosts_in(endpoint))


def _networks(site: Site, endpoints: tuple[str, ...]) -> tuple[Network, ...]:
    seen: dict[Network, None] = {}
    for endpoint in endpoints:
        for net in endpoint_networks(site, endpoint):
            seen.setdefault(net, None)
    return tuple(seen)


def flow_rule(site: Site, flow: Flow) -> Rule:
    return Rule(flow.name, _networks(site, flow.sources), _networks(site, flow.destinations),
                flow.proto, flow.ports, flow.why)


def boundary_rules(site: Site) -> list[Rule]:
    """Every flow, for the boundary router's forward chain."""
    return [r for r in (flow_rule(site, f) for f in site.flows) if r.sources and r.destinations]


def inbound_rules(site: Site, host: str) -> list[Rule]:
    """The flows a host's own firewall lets in: those whose destination includes it."""
    address = site.hosts[host].address
    rules = []
    for flow in site.flows:
        rule = flow_rule(site, flow)
        if any(address in net for net in rule.destinations) and rule.sources:
            mine = (ipaddress.IPv4Network(f"{address}/32"),)
            rules.append(Rule(rule.flow, rule.sources, mine, rule.proto, rule.ports, rule.why))
    return rules


def allows(rules: list[Rule], src: ipaddress.IPv4Address, dst: ipaddress.IPv4Address,
           proto: str, port: int) -> str | None:
    """The name of the first rule that lets src reach dst:port, or None: the firewalls' decision."""
    for rule in rules:
        if (rule.proto == proto and port in rule.ports
                and any(src in n for n in rule.sources)
                and any(dst in n for n in rule.destinations)):
            return rule.flow
    return None
