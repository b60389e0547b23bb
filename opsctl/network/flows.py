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
    # Sources that do not match even though `sources` covers them: an internet zone
    # (0.0.0.0/0) means "anywhere but the site's own zones", not "anyone at all".
    sources_except: tuple[Network, ...] = ()

    def matches_source(self, src: ipaddress.IPv4Address) -> bool:
        return (any(src in n for n in self.sources)
                and not any(src in n for n in self.sources_except))


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


def _is_internet(site: Site, endpoint: str) -> bool:
    return endpoint in site.zones and site.zones[endpoint].internet


def flow_rules(site: Site, flow: Flow) -> list[Rule]:
    """A flow as firewall rules: one, or two when it starts both in the internet and in
    named networks (one match cannot say "outside the site's zones, or in mgmt")."""
    destinations = _networks(site, flow.destinations)
    named = tuple(e for e in flow.sources if not _is_internet(site, e))
    internet = tuple(e for e in flow.sources if _is_internet(site, e))
    rules = []
    if named or not internet:
        rules.append(Rule(flow.name, _networks(site, named), destinations, flow.proto,
                          flow.ports, flow.why))
    if internet:
        rules.append(Rule(flow.name, _networks(site, internet), destinations, flow.proto,
                          flow.ports, flow.why, site.internal_networks()))
    return rules


def boundary_rules(site: Site) -> list[Rule]:
    """Every flow, for the boundary router's forward chain."""
    return [r for f in site.flows for r in flow_rules(site, f) if r.sources and r.destinations]


def inbound_rules(site: Site, host: str) -> list[Rule]:
    """The flows a host's own firewall lets in: those whose destination includes it."""
    address = site.hosts[host].address
    rules = []
    for rule in (r for f in site.flows for r in flow_rules(site, f)):
        if any(address in net for net in rule.destinations) and rule.sources:
            mine = (ipaddress.IPv4Network(f"{address}/32"),)
            rules.append(Rule(rule.flow, rule.sources, mine, rule.proto, rule.ports, rule.why,
                              rule.sources_except))
    return rules


def allows(rules: list[Rule], src: ipaddress.IPv4Address, dst: ipaddress.IPv4Address,
           proto: str, port: int) -> str | None:
    """The name of the first rule that lets src reach dst:port, or None: the firewalls' decision."""
    for rule in rules:
        if (rule.proto == proto and port in rule.ports
                and rule.matches_source(src)
                and any(dst in n for n in rule.destinations)):
            return rule.flow
    return None
