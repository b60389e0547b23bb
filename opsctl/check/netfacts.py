"""Network facts for the catalog's network checks, derived from the site model (pure).

The security package owns the fact names (security/facts.py, groups `site` and `probes`);
this module computes them from a loaded Site and, when a lab was probed, the probe results.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from opsctl.check.probes import REACHED
from opsctl.network.flows import boundary_rules, endpoint_networks, inbound_rules
from opsctl.network.nftables import boundary_ruleset
from opsctl.roles import role_default
from opsctl.site.model import Flow, Site, mirror_unreached
from security.local import NO_SITE_CONTEXT

MGMT, INTERNET, SECURE = "mgmt", "internet", "secure"
TIME_PORT = 123
LOG_GROUPS = ("logging",)
DATABASE_GROUP, BACKUP_GROUP = "db", "backup"
# The central log collector's TLS syslog port (the logserver role listens on it; hardening's
# hardening_rsyslog_port sends to it, tied by tests/unit/test_one_source.py).
LOG_TLS_PORT = role_default("logserver", "logserver_port")


def _zone_of(site: Site, address: ipaddress.IPv4Address) -> str | None:
    zone = site.zone_of(address)
    return zone.name if zone else None


def _endpoint_zones(site: Site, endpoint: str) -> set[str]:
    """The zones an endpoint's traffic starts from or lands in ('control' stays itself)."""
    if endpoint == "control":
        return {"control"}
    if endpoint in site.zones:
        return {endpoint}
    return {h.zone for h in site.hosts_in(endpoint)}


def _endpoint_in_zone(site: Site, endpoint: str, zone: str) -> bool:
    if endpoint == "control":
        return _zone_of(site, site.control_address) == zone
    return zone in _endpoint_zones(site, endpoint)


def _cross_zone_sources(site: Site, flow: Flow) -> set[str]:
    """Source zones of a flow whose traffic crosses into another zone."""
    dest_zones = {z for d in flow.destinations for z in _endpoint_zones(site, d)}
    dest_zones = {(_zone_of(site, site.control_address) or "control") if z == "control" else z
                  for z in dest_zones}
    out = set()
    for src in flow.sources:
        for zone in _endpoint_zones(site, src):
            real = (_zone_of(site, site.control_address) or "control") if zone == "control" \
                else zone
            if dest_zones - {real}:
                out.add(zone)
    return out


def _is_mirror(site: Site, endpoint: str, port: int) -> bool:
    """A flow destination that is the offline mirror's service (and nothing more)."""
    place = site.mirror
    if port != place.port:
        return False
    if place.host is None:
        return endpoint == "control"
    return {h.name for h in site.hosts_in(endpoint)} == {place.host}


def site_facts(site: Site) -> dict[str, Any]:
    # An internet zone (0.0.0.0/0) is "everything else", not an overlap.
    names = [z.name for z in site.zones.values() if not z.internet]
    overlapping = [f"{a}/{b}" for i, a in enumerate(names) for b in names[i + 1:]
                   if site.zones[a].cidr.overlaps(site.zones[b].cidr)]
    outside = sorted(h.name for h in site.hosts.values()
                     if h.address not in site.zones[h.zone].cidr)
    ruleset = boundary_ruleset(boundary_rules(site))
    m = re.search(r"hook forward[^;]*;\s*policy (\w+);", ruleset)
    unused = sorted(f.name for f in site.flows
                    if any(not endpoint_networks(site, e) for e in (*f.sources, *f.destinations)))

    def sources_for(port: int) -> list[str]:
        return sorted({z for f in site.flows if f.proto == "tcp" and port in f.ports
                       for z in _cross_zone_sources(site, f)})

    unmanaged = {z for z, zone in site.zones.items() if not zone.managed}
    public_reaches = sorted({f"{d}:{p}" for f in site.flows if set(f.sources) & unmanaged
                             for d in f.destinations for p in f.ports})
    secure_from = sorted({z for f in site.flows
                          if any(_endpoint_in_zone(site, d, SECURE) for d in f.destinations)
                          for s in f.sources for z in _endpoint_zones(site, s)} - {SECURE})
    internet_secure = sorted({f"{d}:{p}" for f in site.flows
                              if any(INTERNET in _endpoint_zones(site, s) for s in f.sources)
                              for d in f.destinations if _endpoint_in_zone(site, d, SECURE)
                              for p in f.ports})
    # Other zones may reach the management centre's services only: the offline mirror (the
    # control node, or site.mirror.host), the time source (NTP, wherever in mgmt it runs) and
    # the central log collector.
    mgmt_other = sorted({p for f in site.flows
                         if _cross_zone_sources(site, f) - {MGMT, "control"}
                         for d in f.destinations if _endpoint_in_zone(site, d, MGMT)
                         and d not in LOG_GROUPS
                         for p in f.ports if not _is_mirror(site, d, p)
                         and (d, p) != ("control", TIME_PORT)
                         and not (f.proto == "udp" and p == TIME_PORT)})
    in_mgmt = [h for h in site.hosts.values() if h.zone == MGMT]
    collectors = {h.name for h in in_mgmt if set(LOG_GROUPS) & h.groups}
    # Managed zones whose hosts have no whitelisted path to a collector's TLS syslog port.
    log_flows = [f for f in site.flows if f.proto == "tcp" and LOG_TLS_PORT in f.ports
                 and any(h.name in collectors for d in f.destinations
                         for h in site.hosts_in(d))]
    forwarding = {h.name for f in log_flows for s in f.sources for h in site.hosts_in(s)}
    not_forwarding = sorted({h.zone for h in site.hosts.values()
                             if h.name not in forwarding and h.name not in collectors})
    place = site.mirror
    if place.host is None:
        mirror = any(place.port in f.ports and "control" in f.destinations
                     for f in site.flows) and _zone_of(site, place.address) == MGMT
    else:
        mirror = (site.hosts[place.host].zone == MGMT and not mirror_unreached(
            place.host, place.port, site.hosts, site.groups, site.flows))
    time_source = any(f.proto == "udp" and TIME_PORT in f.ports
                      and any(_endpoint_in_zone(site, d, MGMT) for d in f.destinations)
                      for f in site.flows)
    return {
        "name": site.name,
        "zones_overlapping": overlapping,
        "hosts_outside_zone": outside,
        "zones_without_cidr": [],
        "boundary_policy": m.group(1) if m else None,
        "unmatched_traffic_logged": "log prefix" in ruleset,
        "unused_flows": unused,
        "ssh_sources": sources_for(site.spec.connection.port),  # where sshd listens
        "agent_sources": sources_for(site.spec.agent_port),
        "public_reaches": public_reaches,
        "secure_reachable_from": secure_from,
        "internet_reaches_secure": internet_secure,
        "secure_zone_exposed_groups": internet_secure,
        "mgmt_inbound_other_ports": mgmt_other,
        "mgmt_groups": sorted({g for h in in_mgmt for g in h.groups} - {MGMT, "all"}),
        "monitoring_hosts_in_mgmt": sorted(h.name for h in in_mgmt if "monitoring" in h.groups),
        "log_collector_hosts_in_mgmt": sorted(collectors),
        "zones_not_forwarding_logs": not_forwarding,
        "mirror_in_mgmt": mirror,
        "time_source_in_mgmt": time_source,
        "flows_without_reason": sorted(f.name for f in site.flows if not f.why.strip()),
    }


NOT_PROBED = ("boundary not probed: the site model says what the firewall should do, not what "
              "it does (run opsctl check --site without --no-probes, or verify the device's "
              "ruleset by hand against opsctl site boundary)")
PROBE_KEYS = ("count", "not_probed", "unexpected_open", "unexpected_closed", "ssh_unexpected",
              "agent_unexpected", "public_unexpected", "public_into_secure_open",
              "internet_into_secure_unexpected", "into_mgmt_unexpected")


def _probe_zone(site: Site, name: str) -> str | None:
    """The zone a probe endpoint sits in: a host's, a lab client's (named after its zone),
    or the control node's."""
    if name in site.hosts:
        return site.hosts[name].zone
    if name in site.zones:
        return name
    return site.control_zone().name if name == "control" else None


def _unexpected(r: dict[str, Any]) -> bool:
    if r["expect"] == "open":
        return r["outcome"] != "connected"
    return r["outcome"] in REACHED


def _judged(labels: list[str], missing: list[str]) -> list[str] | dict[str, str]:
    """Labels prove a failure on their own; no labels prove a pass only when every probe
    that bears on the fact ran."""
    if labels or not missing:
        return labels
    return {"error": f"probes incomplete: not probed from {', '.join(missing)}"}


def probe_facts(site: Site, results: list[dict[str, Any]] | None,
                not_probed: dict[str, str] | None = None) -> dict[str, Any]:
    """The enforced state from flow-probe results (ProbeResult.as_dict() shape).

    Without results every fact but `ran` is an error, so that no check of the enforced state
    passes on the policy alone. `not_probed` names sources whose probes could not run, with
    why: a fact they bear on is an error unless the probes that did run already fail it.
    """
    if results is None:
        return {"ran": False, **{k: {"error": NOT_PROBED} for k in PROBE_KEYS}}
    missing = not_probed or {}
    unmanaged = {z for z, zone in site.zones.items() if not zone.managed}
    # The control node's own connections are the operator's; its SSH is proven by the scan.
    missing_hosts = [s for s in missing if s != "control" and _probe_zone(site, s) not in unmanaged]
    missing_public = [s for s in missing if _probe_zone(site, s) in unmanaged]

    def label(r: dict[str, Any]) -> str:
        return f"{r['from']} -> {r['to']}:{r['port']} ({r['outcome']})"

    def src(r: dict[str, Any]) -> str | None:
        return _probe_zone(site, r["from"])

    def dst(r: dict[str, Any]) -> str | None:
        return _probe_zone(site, r["to"])

    # where sshd listens: the site's port, or a host's own (ansible_port)
    ssh_ports = {site.spec.connection.port} | {h.login.port for h in site.hosts.values()
                                                if h.login.port is not None}
    bad = [r for r in results if _unexpected(r)]
    from_public = [r for r in bad if src(r) in unmanaged]
    return {
        "ran": True,
        "count": len(results) if results else {"error": "no probe ran: " + "; ".join(
            f"{s}: {why}" for s, why in missing.items())},
        "not_probed": [f"{s}: {why}" for s, why in missing.items()],
        "unexpected_open": _judged([label(r) for r in bad if r["expect"] == "closed"],
                                   missing_hosts),
        "unexpected_closed": _judged([label(r) for r in bad if r["expect"] == "open"],
                                     missing_hosts),
        "ssh_unexpected": _judged([label(r) for r in bad if r["port"] in ssh_ports],
                                  missing_hosts),
        "agent_unexpected": _judged([label(r) for r in bad if r["port"] == site.agent_port],
                                    missing_hosts),
        "public_unexpected": _judged([label(r) for r in from_public], missing_public),
        "public_into_secure_open": _judged(
            [label(r) for r in from_public if dst(r) == SECURE and r["outcome"] in REACHED],
            missing_public),
        "internet_into_secure_unexpected": _judged(
            [label(r) for r in bad if src(r) == INTERNET and dst(r) == SECURE], missing_hosts),
        "into_mgmt_unexpected": _judged(
            [label(r) for r in bad if dst(r) == MGMT and src(r) != MGMT], missing_hosts),
    }


def network_facts(site: Site, probes: list[dict[str, Any]] | None = None,
                  not_probed: dict[str, str] | None = None) -> dict[str, Any]:
    return {"site": site_facts(site), "probes": probe_facts(site, probes, not_probed)}


def host_context(site: Site | None, host: str | None) -> dict[str, Any]:
    """What the site says about one host (its zone, groups, whitelisted ports)."""
    if site is None or host is None:
        return dict(NO_SITE_CONTEXT)
    h = site.hosts[host]
    ports = sorted({p for r in inbound_rules(site, host) if r.proto == "tcp" for p in r.ports})
    return {"site": site.name, "zone": h.zone, "groups": sorted(h.groups),
            "allowed_tcp_ports": ports,
            "management_cidrs": [str(site.zones[MGMT].cidr)] if MGMT in site.zones else [],
            "backup_repository_hosts": backup_repository_hosts(site, host)}


def backup_repository_hosts(site: Site, host: str) -> list[str]:
    """Where a database host's backups are kept: the site's backup hosts (pgBackRest's
    repository), none for any other host and for a backup host itself."""
    if DATABASE_GROUP not in site.hosts[host].groups:
        return []
    return sorted(name for name, h in site.hosts.items()
                  if BACKUP_GROUP in h.groups and name != host)
