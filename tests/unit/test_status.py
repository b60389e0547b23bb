"""`opsctl status` builds its view from Prometheus and Alertmanager answers (no hosts)."""

from __future__ import annotations

import pytest

from opsctl.site import load_site
from opsctl.status import build


def sample(host: str, value: float, **labels: str) -> dict:
    return {"metric": {"host": host, **labels}, "value": [1764000000.0, str(value)]}


@pytest.fixture
def site():
    return load_site("reference")


def answers(**overrides) -> dict:
    base = {
        "up": [sample(h, 1) for h in ("app1", "app2", "bak1", "db1", "db2", "lb1", "mon1")],
        "load1": [sample("db1", 0.42)],
        "memory": [sample("db1", 0.8)],
        "filesystems": [sample("db1", 0.3, mountpoint="/"),
                        sample("db1", 0.91, mountpoint="/var/lib/postgresql")],
        "failed_units": [],
        "compliance": [sample("db1", 0.75)],
    }
    base.update(overrides)
    return base


def test_a_green_site(site):
    status = build(site, "http://172.31.10.11:9090", answers(), [])
    assert status.healthy
    db1 = next(h for h in status.hosts if h.name == "db1")
    assert (db1.zone, db1.agent, db1.load1, db1.compliance) == ("secure", "up", 0.42, 0.75)
    assert (db1.fullest_mount, db1.fullest_used) == ("/var/lib/postgresql", 0.91)
    assert status.as_dict()["healthy"] is True


def test_a_down_agent_a_failed_unit_and_a_firing_alert_make_it_unhealthy(site):
    up = [sample(h, 1) for h in ("app1", "bak1", "db1", "db2", "lb1", "mon1")]
    up.append(sample("app2", 0))
    failed = [sample("db2", 1, unit="postgresql@15-main.service", state="failed")]
    alerts = [{"labels": {"alertname": "OpsctlHostDown", "host": "app2",
                          "severity": "critical"},
               "annotations": {"summary": "app2: monitoring agent unreachable"},
               "startsAt": "2026-11-29T02:00:00Z", "status": {"state": "active"}},
              {"labels": {"alertname": "OpsctlDiskFilling", "host": "bak1",
                          "severity": "warning"},
               "annotations": {}, "startsAt": "", "status": {"state": "suppressed"}}]
    status = build(site, "p", answers(up=up, failed_units=failed), alerts)
    assert not status.healthy
    hosts = {h.name: h for h in status.hosts}
    assert hosts["app2"].agent == "down"
    assert hosts["db2"].failed_units == ["postgresql@15-main.service"]
    assert [(a.name, a.host) for a in status.alerts] == [("OpsctlHostDown", "app2")]


def test_a_host_prometheus_does_not_scrape_is_unknown_not_up(site):
    up = [sample(h, 1) for h in ("app1", "app2", "bak1", "db1", "db2", "lb1")]
    status = build(site, "p", answers(up=up), [])
    assert next(h for h in status.hosts if h.name == "mon1").agent == "unknown"
    assert not status.healthy
