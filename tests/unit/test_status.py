"""`opsctl status` builds its view from Prometheus and Alertmanager answers (no hosts)."""

from __future__ import annotations

import pytest

from opsctl.site import load_site
from opsctl.status.view import build


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


AUDIT_REASON = ("kernel audit is not available to this host (auditctl -s: Error sending "
                "status request (Operation not permitted))")
HOSTS = ("app1", "app2", "bak1", "db1", "db2", "lb1", "mon1")


def systemd(**overrides) -> dict:
    """Every host running, auditd off by design on each (the lab: no kernel audit)."""
    base = {"system_state": [sample(h, 1, state="running") for h in HOSTS],
            "disabled_by_design": [sample(h, 1, unit="auditd.service", reason=AUDIT_REASON)
                                   for h in HOSTS]}
    base.update(overrides)
    return answers(**base)


def test_units_disabled_by_design_are_shown_apart_and_keep_the_host_healthy(site):
    status = build(site, "p", systemd(), [])
    assert status.healthy
    db1 = next(h for h in status.hosts if h.name == "db1")
    assert db1.system_state == "running" and db1.failed_units == []
    data = status.as_dict()
    host = next(h for h in data["hosts"] if h["name"] == "db1")
    assert host["disabled_by_design"] == [{"unit": "auditd.service", "reason": AUDIT_REASON}]
    assert host["system_state"] == "running" and host["healthy"] is True
    assert host["failed_units"] == []


def test_every_failed_unit_and_a_degraded_systemd_make_the_host_unhealthy(site):
    states = [sample(h, 1, state="degraded" if h == "app1" else "running") for h in HOSTS]
    failed = [sample("app1", 1, unit="auditd.service", state="failed"),
              sample("app1", 1, unit="opsctl-test-failing.service", state="failed")]
    status = build(site, "p", systemd(system_state=states, failed_units=failed), [])
    assert not status.healthy
    hosts = {h["name"]: h for h in status.as_dict()["hosts"]}
    assert hosts["app1"]["failed_units"] == ["auditd.service", "opsctl-test-failing.service"]
    assert (hosts["app1"]["system_state"], hosts["app1"]["healthy"]) == ("degraded", False)
    assert all(h["healthy"] for name, h in hosts.items() if name != "app1")
    # degraded alone (a failure the agent did not catch between scrapes) is unhealthy too
    alone = build(site, "p", systemd(system_state=states), [])
    assert not alone.healthy
    assert [h.name for h in alone.hosts if not h.healthy] == ["app1"]


def test_an_agent_that_cannot_ask_systemd_leaves_its_state_unknown(site):
    status = build(site, "p", systemd(system_state=[]), [])
    assert {h.system_state for h in status.hosts} == {None}
    assert status.healthy


def test_failed_units_systemd_and_disabled_units_on_screen(site):
    from rich.console import Console

    from opsctl.cli.status import render

    states = [sample(h, 1, state="degraded" if h == "app1" else "running") for h in HOSTS]
    failed = [sample("app1", 1, unit="opsctl-test-failing.service", state="failed")]
    status = build(site, "p", systemd(system_state=states, failed_units=failed), [])
    console = Console(record=True, width=250)
    console.print(render(status))
    text = console.export_text()
    assert "degraded" in text and "opsctl-test-failing.service" in text
    assert "units disabled by design" in text
    reasons = [line for line in text.splitlines() if "auditd.service" in line]
    assert len(reasons) == len(HOSTS) and all("Operation not permitted" in r for r in reasons)


def test_a_host_prometheus_does_not_scrape_is_unknown_not_up(site):
    up = [sample(h, 1) for h in ("app1", "app2", "bak1", "db1", "db2", "lb1")]
    status = build(site, "p", answers(up=up), [])
    assert next(h for h in status.hosts if h.name == "mon1").agent == "unknown"
    assert not status.healthy


def platform(**overrides) -> dict:
    base = {
        "pg_up": [sample("db1", 1), sample("db2", 1)],
        "pg_recovery": [sample("db1", 0), sample("db2", 1)],
        "pg_streaming": [sample("db1", 1, replica="db2")],
        "pg_lag_bytes": [sample("db1", 2048, replica="db2")],
        "pg_lag_seconds": [sample("db1", 0.5, replica="db2")],
        "backup_age": [sample("bak1", 3 * 3600, stanza="main")],
        "backup_policy": [sample("bak1", 26 * 3600, stanza="main")],
        "backup_count": [sample("bak1", 3, stanza="main")],
        "job_failures": [],
    }
    base.update(overrides)
    return answers(**base)


def test_the_database_backups_and_jobs_of_a_green_site(site):
    status = build(site, "p", platform(), [])
    assert status.healthy
    assert [(s.host, s.role) for s in status.database] == [("db1", "primary"),
                                                           ("db2", "replica")]
    [replica] = status.replicas
    assert (replica.name, replica.primary, replica.streaming, replica.lag_bytes) == (
        "db2", "db1", True, 2048)
    [backup] = status.backups
    assert (backup.stanza, backup.newest_age_seconds, backup.healthy) == ("main", 10800, True)
    data = status.as_dict()
    assert data["replicas"][0]["healthy"] and data["backups"][0]["healthy"]
    assert data["database_healthy"] and data["backups_healthy"] and data["failing_jobs"] == []


@pytest.mark.parametrize("change, what", [
    ({"pg_up": [sample("db1", 1), sample("db2", 0)],
      "pg_streaming": [sample("db1", 0, replica="db2")], "pg_lag_bytes": [], "pg_lag_seconds": []},
     "a stopped replica"),
    ({"pg_lag_seconds": [sample("db1", 900, replica="db2")]}, "a lagging replica"),
    ({"backup_age": [sample("bak1", 30 * 3600, stanza="main")]}, "a backup older than policy"),
    ({"backup_age": []}, "no backup at all"),
    ({"job_failures": [sample("bak1", 2, job_name="backup-incr")]}, "a failing job"),
])
def test_the_platform_makes_the_site_red(site, change, what):
    status = build(site, "p", platform(**change), [])
    assert not status.healthy, what
    assert status.problems(), what


def test_a_stopped_replica_shows_in_the_json_and_on_screen(site):
    from rich.console import Console

    from opsctl.cli.status import render

    status = build(site, "p", platform(
        pg_up=[sample("db1", 1), sample("db2", 0)], pg_recovery=[sample("db1", 0)],
        pg_streaming=[sample("db1", 0, replica="db2")], pg_lag_bytes=[], pg_lag_seconds=[],
        job_failures=[sample("bak1", 2, job_name="backup-incr")]), [])
    data = status.as_dict()
    assert {s["host"]: s["role"] for s in data["database"]} == {"db1": "primary", "db2": "down"}
    assert data["replicas"] == [{"name": "db2", "primary": "db1", "streaming": False,
                                 "lag_bytes": None, "lag_seconds": None, "healthy": False}]
    assert data["failing_jobs"] == [{"host": "bak1", "job": "backup-incr",
                                     "consecutive_failures": 2}]
    console = Console(record=True, width=140)
    console.print(render(status))
    text = console.export_text()
    assert "down" in text and "backup-incr on bak1 (2x)" in text
    assert "backup main on bak1: newest 3.0 h old (policy 26.0 h)" in text


class _LocalTransport:
    """Runs the command here, as the monitoring host would (its stdin, its argv)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def run(self, host, argv, stdin=None, *, timeout):
        import subprocess
        import sys

        from opsctl.transport import Result

        self.calls.append((host, argv))
        done = subprocess.run([sys.executable, *argv[1:]], input=stdin, capture_output=True,
                              text=True, timeout=timeout, check=False)
        return Result(done.returncode, done.stdout, done.stderr)


def test_fetch_runs_the_queries_on_the_monitoring_host(monkeypatch) -> None:
    """One transport call to mon1; the program there asks Prometheus and Alertmanager where
    they listen (here a local server standing in for both) and answers in one JSON."""
    import http.server
    import json
    import threading
    import urllib.parse

    from opsctl.site import load_site
    from opsctl.status import fetch as status_module

    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            asked.append(self.path)
            if self.path.startswith("/api/v1/query"):
                query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)["query"][0]
                result = [{"metric": {"host": "db1"}, "value": [0, "1"]}] \
                    if query.startswith("up") else []
                body = {"status": "success", "data": {"result": result}}
            else:
                body = []
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    site = load_site("reference")
    # Both services answer on the stand-in server's port, at the loopback address.
    site.hosts["mon1"] = type(site.hosts["mon1"])(
        "mon1", __import__("ipaddress").IPv4Address("127.0.0.1"), "mgmt",
        site.hosts["mon1"].groups)
    port = server.server_address[1]
    monkeypatch.setattr(status_module, "role_default", lambda _role, _key: port)
    transport = _LocalTransport()
    try:
        result = status_module.fetch(site, transport=transport)
    finally:
        server.shutdown()
    assert [host for host, _ in transport.calls] == ["mon1"]
    assert len([p for p in asked if p.startswith("/api/v1/query")]) == len(
        status_module.QUERIES)
    assert any(p.startswith("/api/v2/alerts") for p in asked)
    assert {h.name: h.agent for h in result.hosts}["db1"] == "up"


def test_fetch_says_when_prometheus_does_not_answer(monkeypatch) -> None:
    import ipaddress

    import pytest

    from opsctl.site import load_site
    from opsctl.status import fetch as status_module

    site = load_site("reference")
    site.hosts["mon1"] = type(site.hosts["mon1"])(
        "mon1", ipaddress.IPv4Address("127.0.0.1"), "mgmt", site.hosts["mon1"].groups)
    monkeypatch.setattr(status_module, "role_default", lambda _role, _key: 9)  # discard port
    with pytest.raises(status_module.MonitoringUnreachable,
                       match=r"mon1: http://127.0.0.1:9/api/v1/query: .*refused"):
        status_module.fetch(site, timeout=2, transport=_LocalTransport())


def test_problems_name_each_reason_and_are_empty_exactly_when_healthy(site):
    green = build(site, "http://mon1:9090", answers(), [])
    assert green.healthy and green.problems() == []
    red = build(site, "http://mon1:9090", answers(), [
        {"labels": {"alertname": "OpsctlHostDown", "host": "app2", "severity": "critical"},
         "status": {"state": "active"}}])
    assert not red.healthy
    assert red.problems() == ["alert OpsctlHostDown firing on app2"]
