"""`opsctl status`'s edge: the queries run on the monitoring host itself.

One call through the site's transport runs them there (opsctl/remote/monitoring_query.py), so
status reaches a site behind its bastion like every other command, and nothing speaks plain
HTTP across the network from the control node.
"""

from __future__ import annotations

import json

from opsctl.errors import OpsctlError
from opsctl.remote import program
from opsctl.roles import role_default
from opsctl.site.model import Site
from opsctl.status.view import QUERIES, SiteStatus, build
from opsctl.transport import HostError, Transport, for_site


class MonitoringUnreachable(OpsctlError):
    exit_code = 1


def monitoring_host(site: Site) -> str:
    """The first host of group `monitoring` (the one Prometheus and Alertmanager run on)."""
    hosts = sorted(site.groups.get("monitoring", ()))
    if not hosts:
        raise MonitoringUnreachable(f"site {site.name} has no host in group `monitoring`")
    return hosts[0]


def fetch(site: Site, timeout: float = 5.0, via: str | None = None,
          transport: Transport | None = None) -> SiteStatus:
    host = monitoring_host(site)
    address = site.hosts[host].address
    prometheus = f"http://{address}:{role_default('prometheus', 'prometheus_port')}"
    request = {"prometheus": prometheus, "queries": QUERIES, "timeout": timeout,
               "alertmanager": f"http://{address}:"
                               f"{role_default('alertmanager', 'alertmanager_port')}"}
    t = transport or for_site(site, via)
    try:
        done = t.run(host, ["python3", "-", json.dumps(request)],
                     stdin=program("monitoring_query"), timeout=timeout * (len(QUERIES) + 2))
    except HostError as exc:
        raise MonitoringUnreachable(str(exc)) from None
    try:
        answer = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise MonitoringUnreachable(f"{host}: the monitoring query failed: {done.message}"
                                    ) from None
    if answer.get("error"):
        raise MonitoringUnreachable(f"{host}: {answer['error']}")
    return build(site, prometheus, answer["answers"], answer["alerts"])
