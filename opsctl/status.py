"""`opsctl status`: one view of the site from its Prometheus and Alertmanager.

The fetching is at the edge (`fetch`); `build` is pure: API answers in, a SiteStatus out,
so it is tested with recorded answers and no hosts.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any

from opsctl.errors import OpsctlError
from opsctl.site.model import Site

# The ports the prometheus and alertmanager roles listen on (their defaults).
PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093

QUERIES = {
    "up": 'up{job="opsctl-agent"}',
    "load1": "opsctl_host_load1",
    "memory": "opsctl_host_memory_available_bytes / opsctl_host_memory_total_bytes",
    "filesystems": '1 - opsctl_host_filesystem_avail_bytes{fstype!~"tmpfs|devtmpfs"}'
                   ' / opsctl_host_filesystem_size_bytes',
    "failed_units": 'opsctl_systemd_unit_state{state="failed"} == 1',
    "compliance": "opsctl_compliance_pass_ratio",
}


class MonitoringUnreachable(OpsctlError):
    exit_code = 1


@dataclass
class HostStatus:
    name: str
    zone: str
    agent: str = "unknown"  # up | down | unknown (not scraped)
    load1: float | None = None
    memory_available: float | None = None  # share of total
    fullest_mount: str | None = None
    fullest_used: float | None = None  # share of size
    failed_units: list[str] = field(default_factory=list)
    compliance: float | None = None

    @property
    def healthy(self) -> bool:
        return self.agent == "up" and not self.failed_units


@dataclass
class Alert:
    name: str
    host: str
    severity: str
    since: str
    summary: str


@dataclass
class SiteStatus:
    site: str
    prometheus: str
    hosts: list[HostStatus]
    alerts: list[Alert]

    @property
    def healthy(self) -> bool:
        return all(h.healthy for h in self.hosts) and not self.alerts

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["healthy"] = self.healthy
        return data


def monitoring_host(site: Site) -> str:
    hosts = sorted(site.groups.get("monitoring", ()))
    if not hosts:
        raise MonitoringUnreachable(f"site {site.name} has no host in group `monitoring`")
    return str(site.hosts[hosts[0]].address)


def _by_host(results: list[dict]) -> dict[str, list[tuple[dict, float]]]:
    grouped: dict[str, list[tuple[dict, float]]] = {}
    for result in results:
        host = result.get("metric", {}).get("host")
        if host:
            grouped.setdefault(host, []).append((result["metric"], float(result["value"][1])))
    return grouped


def build(site: Site, prometheus: str, answers: dict[str, list[dict]],
          alerts: list[dict]) -> SiteStatus:
    """Combine the instant-query answers (by QUERIES key) and Alertmanager's alerts."""
    data = {key: _by_host(answers.get(key, [])) for key in QUERIES}
    zones = {h.name: h.zone for h in site.hosts.values()}
    hosts = []
    for name in sorted(site.hosts):
        status = HostStatus(name, zones[name])
        if name in data["up"]:
            status.agent = "up" if data["up"][name][0][1] == 1 else "down"
        if name in data["load1"]:
            status.load1 = data["load1"][name][0][1]
        if name in data["memory"]:
            status.memory_available = data["memory"][name][0][1]
        if name in data["filesystems"]:
            labels, used = max(data["filesystems"][name], key=lambda item: item[1])
            status.fullest_mount, status.fullest_used = labels.get("mountpoint"), used
        status.failed_units = sorted(m.get("unit", "?") for m, _ in data["failed_units"]
                                     .get(name, []))
        if name in data["compliance"]:
            status.compliance = data["compliance"][name][0][1]
        hosts.append(status)
    firing = [
        Alert(a["labels"].get("alertname", "?"), a["labels"].get("host", ""),
              a["labels"].get("severity", ""), a.get("startsAt", ""),
              a.get("annotations", {}).get("summary", ""))
        for a in alerts if a.get("status", {}).get("state", "active") == "active"
    ]
    firing.sort(key=lambda a: (a.severity != "critical", a.name, a.host))
    return SiteStatus(site.name, prometheus, hosts, firing)


def _get(url: str, timeout: float) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, TimeoutError, OSError, json.JSONDecodeError) as exc:
        reason = getattr(exc, "reason", exc)
        raise MonitoringUnreachable(f"{url.split('?')[0]}: {reason}") from None


def fetch(site: Site, timeout: float = 5.0) -> SiteStatus:
    address = monitoring_host(site)
    prometheus = f"http://{address}:{PROMETHEUS_PORT}"
    answers = {}
    for key, expr in QUERIES.items():
        url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        answers[key] = _get(url, timeout).get("data", {}).get("result", [])
    alerts = _get(f"http://{address}:{ALERTMANAGER_PORT}/api/v2/alerts?active=true"
                  "&silenced=false&inhibited=false", timeout)
    return build(site, prometheus, answers, alerts)
