"""A site as plain data, for `site show` and anything else that reports on it."""

from __future__ import annotations

from typing import Any

from opsctl.site.model import Site


def describe(site: Site) -> dict[str, Any]:
    zones = []
    for zone in site.zones.values():
        hosts = [
            {"name": h.name, "address": str(h.address),
             "groups": sorted(g for g in h.groups if g not in ("all", zone.name))}
            for h in site.hosts.values() if h.zone == zone.name
        ]
        if zone.name == site.control_zone().name:
            hosts.insert(0, {"name": "control", "address": str(site.control_address),
                             "groups": ["(control node, offline mirror)"]})
        zones.append({"name": zone.name, "cidr": str(zone.cidr), "purpose": zone.purpose,
                      "router": str(zone.router_address), "managed": zone.managed,
                      "hosts": hosts})
    flows = [{"name": f.name, "from": list(f.sources), "to": list(f.destinations),
              "ports": list(f.ports), "proto": f.proto, "why": f.why} for f in site.flows]
    return {"site": site.name, "title": site.spec.title,
            "protection_level": site.spec.protection_level, "zones": zones, "flows": flows}
