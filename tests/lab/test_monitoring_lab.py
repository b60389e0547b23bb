"""Monitoring on the reference lab: Prometheus scrapes every agent, the rules name only
metrics that something exports, and an alert reaches Alertmanager and resolves."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from opsctl import audit
from opsctl.aide.accept import accept
from opsctl.lab import lifecycle

# Alerts' `for:` periods are waited for in real time: the province converges meanwhile
# (conftest.py).
pytestmark = pytest.mark.clock_bound

RULES = Path(__file__).resolve().parents[2] / "monitor" / "rules" / "opsctl.rules.yml"


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def monitoring_address(site) -> str:
    return str(site.hosts[sorted(site.groups["monitoring"])[0]].address)


def query(site, expr: str) -> list[dict]:
    url = (f"http://{monitoring_address(site)}:9090/api/v1/query?"
           + urllib.parse.urlencode({"query": expr}))
    return get_json(url)["data"]["result"]


def wait_for(condition, seconds: float, every: float = 3.0):
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


def test_prometheus_scrapes_every_hosts_agent(reference):
    site, _ = reference

    def agents_up():
        results = query(site, 'up{job="opsctl-agent"}')
        up = {r["metric"]["host"]: r["value"][1] for r in results}
        return up if up == {h: "1" for h in site.hosts} else None

    assert wait_for(agents_up, 90), query(site, "up")
    others = {r["metric"]["job"]: r["value"][1] for r in query(site, 'up{job!="opsctl-agent"}')}
    # the components that serve metrics (site.components.X.metrics_port) are jobs of their own
    assert others == {"prometheus": "1", "alertmanager": "1", "access-gateway": "1"}


AIDE_HOST = "app1"
AIDE_PROBE = "/usr/local/sbin/opsctl-aide-probe"


def run_aide_daily_check(site, host: str) -> None:
    """Debian's daily check as its timer starts it (as _aide), then the status timer's
    service; their start limits (one run in two hours, three in ten minutes), hence
    reset-failed."""
    code, out = lifecycle.ssh.remote(site, host, [
        "sh", "-c", "systemctl reset-failed dailyaidecheck.service opsctl-aide-status.service; "
        "systemctl start dailyaidecheck.service && systemctl start opsctl-aide-status.service"],
        timeout=600)
    assert code == 0, out


@pytest.fixture(scope="class")
def aide_checked(reference):
    """A file added on app1 since its AIDE baseline, found by the daily check. Afterwards it
    is reviewed and accepted as an operator would (`opsctl aide accept`), then removed and
    that accepted too, and the alert is gone (the lab is shared: later tests expect a green
    site)."""
    site, _ = reference
    code, out = lifecycle.ssh.remote(site, AIDE_HOST, ["sh", "-c", f"echo probe > {AIDE_PROBE}"])
    assert code == 0, out
    try:
        run_aide_daily_check(site, AIDE_HOST)
        yield site
    finally:
        try:
            first = accept(site, [AIDE_HOST], "lab: the AIDE probe, accepted to prove the record")
        finally:
            code, out = lifecycle.ssh.remote(site, AIDE_HOST, ["rm", "-f", AIDE_PROBE])
        assert code == 0, out
        second = accept(site, [AIDE_HOST], "lab: the AIDE probe removed after its test")
        accept_records = [r for r in audit.records() if r["action"] == "aide-accept"][-2:]
        gone = wait_for(lambda: not [a for a in alerts(site, "OpsctlFileIntegrityChanged")
                                     if a["labels"].get("host") == AIDE_HOST], 120, every=5)
        assert gone, "OpsctlFileIntegrityChanged still active after a clean daily check"
        accepted_probe(first, second, accept_records, site)


def accepted_probe(first, second, records, site) -> None:
    """The accept's promises: the probe on the record as added and then as removed, with the
    reasons; the baseline installed is the one the record names; the new check clean."""
    [host] = first.hosts
    assert host.installed, host.error
    assert ("added", AIDE_PROBE) in {(e.change, e.path) for e in host.entries}
    assert host.update_exit_code in (1, 3, 5, 7)
    [host] = second.hosts
    assert host.ok, host.error
    assert ("removed", AIDE_PROBE) in {(e.change, e.path) for e in host.entries}
    assert host.check.state == "clean" and host.check.checked >= host.check.baseline
    assert [r["args"]["reason"] for r in records] == [
        "lab: the AIDE probe, accepted to prove the record",
        "lab: the AIDE probe removed after its test"]
    assert any(e["path"] == AIDE_PROBE and e["change"] == "added"
               for e in records[0]["args"]["entries"])
    assert records[1]["result"].startswith("ok: ")
    code, out = lifecycle.ssh.remote(site, AIDE_HOST, ["sha256sum", "/var/lib/aide/aide.db"])
    assert code == 0 and out.split()[0] == records[1]["args"]["baseline_sha256"]["new"], out


class TestWithAnAideFinding:
    """app1's AIDE daily check has found a file added since the baseline (aide_checked, made
    once for the class and undone after it, so that the rest of the module sees a green
    site). The rules' metrics include the last check's, which exist once a check ran."""

    def test_a_file_added_since_the_aide_baseline_fires_its_alert(self, aide_checked,
                                                                     scrape_agent):
        """AIDE's daily check reports to a log and to root's mail, which on a host without a mail
        transport goes nowhere: the finding must reach Prometheus and Alertmanager instead."""
        site = aide_checked
        metrics = scrape_agent(site, AIDE_HOST)
        assert re.search(r'^opsctl_aide_last_check_entries\{change="added"[^}]*\} [1-9]', metrics,
                         re.M), metrics
        code = re.search(r"^opsctl_aide_last_check_exit_code(?:\{[^}]*\})? (\S+)$", metrics, re.M)
        assert code and int(float(code.group(1))) in (1, 3, 5, 7), metrics  # 1: added (and others
        # the shared lab's earlier tests may have made: a broken and repaired sshd_config)
        checked = float(re.search(r"^opsctl_aide_last_check_timestamp_seconds(?:\{[^}]*\})? (\S+)$",
                                  metrics, re.M).group(1))
        assert time.time() - checked < 900, "the status does not come from the check just run"

        def fired():
            return [a for a in alerts(site, "OpsctlFileIntegrityChanged")
                    if a["labels"].get("host") == AIDE_HOST]

        found = wait_for(fired, 120, every=5)
        assert found, "OpsctlFileIntegrityChanged for app1 not in Alertmanager within 2 minutes"
        assert found[0]["labels"]["severity"] == "warning"
        others = [a["labels"]["host"] for a in alerts(site, "OpsctlFileIntegrityChanged")]
        assert others == [AIDE_HOST], others  # no other host's check ran


    def test_every_metric_a_rule_names_is_exported_on_the_lab(self, reference, scrape_agent,
                                                                  aide_checked):
        site, _ = reference
        # The compliance scan, started by app1's scheduler, so its metrics exist.
        code, out = lifecycle.ssh.remote(site, "app1", [
            "env", "PYTHONPATH=/opt/opsctl-scheduler", "python3", "-m", "scheduler", "run",
            "compliance-scan"], timeout=600)
        assert code == 0, out
        # A job that succeeds, so the scheduler's success metrics exist (bak1: an incremental
        # backup started by the scheduler as pgBackRest's account).
        code, out = lifecycle.ssh.remote(site, "bak1", [
            "env", "PYTHONPATH=/opt/opsctl-scheduler", "python3", "-m", "scheduler", "run",
            "backup-incr"], timeout=600)
        assert code == 0, out
        exported: set[str] = set()
        for host in site.hosts:
            exported |= set(re.findall(r"^([a-z_:][a-z0-9_:]*)[{ ]", scrape_agent(site, host),
                                       re.M))
        prometheus_names = get_json(f"http://{monitoring_address(site)}:9090/api/v1/label/"
                                    "__name__/values")["data"]
        exported |= set(prometheus_names)
        named = set()
        for group in yaml.safe_load(RULES.read_text())["groups"]:
            for rule in group["rules"]:
                named |= set(re.findall(r"\b((?:opsctl|access_gateway)_[a-z0-9_]+|up)\b",
                                        rule["expr"]))
        assert named - exported == set()


def opsctl_status(site) -> tuple[int, dict]:
    done = subprocess.run([sys.executable, "-m", "opsctl", "status", "--site",
                           str(site.directory), "-o", "json"], capture_output=True, text=True,
                          timeout=60, check=False)
    return done.returncode, json.loads(done.stdout)


def test_status_shows_the_converged_site_green(reference):
    site, _ = reference
    code, status = opsctl_status(site)
    assert [h["agent"] for h in status["hosts"]] == ["up"] * len(site.hosts)
    assert all(h["memory_available"] and h["fullest_mount"] for h in status["hosts"])
    assert code == (0 if status["healthy"] else 1)
    assert not [a for a in status["alerts"] if a["name"] == "OpsctlHostDown"]


def test_status_shows_the_database_backups_and_jobs(reference):
    site, _ = reference

    def streaming():
        code, status = opsctl_status(site)
        return status if status["replicas"] and status["backups"] else None

    status = wait_for(streaming, 120, every=10)
    assert status, "no database or backup metrics in opsctl status"
    primary = sorted(site.groups["db_primary"])[0]
    replica = sorted(site.groups["db_replica"])[0]
    assert {s["host"]: s["role"] for s in status["database"]} == {primary: "primary",
                                                                  replica: "replica"}
    assert [(r["name"], r["primary"], r["streaming"]) for r in status["replicas"]] == [
        (replica, primary, True)]
    [backup] = status["backups"]
    assert backup["healthy"] and backup["max_age_seconds"] == 26 * 3600
    assert status["database_healthy"] and status["failing_jobs"] == []


FAILING_UNIT = "opsctl-test-failing.service"


def hosts_by_name(status: dict) -> dict[str, dict]:
    return {h["name"]: h for h in status["hosts"]}


def test_status_counts_every_failed_unit_and_says_why_auditd_is_off(reference):
    """(a) The converged lab: no failed unit and systemd `running` on every host, auditd
    listed as disabled by design, with its reason, exactly where the kernel refuses audit
    (every lab container). (b) A transient unit that fails on one host, outside every watch
    list: status lists it and the host is unhealthy (exit 1) within a bounded wait; after
    `systemctl reset-failed` status is clean again."""
    site, _ = reference
    refused = set()
    for host in site.hosts:
        code, _out = lifecycle.ssh.remote(site, host, ["auditctl", "-s"], timeout=30)
        if code != 0:
            refused.add(host)
    assert refused == set(site.hosts), "lab containers do not own kernel audit"

    def settled():
        code, status = opsctl_status(site)
        hosts = hosts_by_name(status)
        clean = all(not h["failed_units"] and h["system_state"] == "running"
                    for h in hosts.values())
        return (code, status) if clean else None

    found = wait_for(settled, 90, every=5)
    assert found, {name: (h["failed_units"], h["system_state"])
                   for name, h in hosts_by_name(opsctl_status(site)[1]).items()}
    code_before, status = found
    for name, host in hosts_by_name(status).items():
        off = {d["unit"]: d["reason"] for d in host["disabled_by_design"]}
        if name in refused:
            assert off.get("auditd.service", "").startswith(
                "kernel audit is not available to this host"), (name, off)
        else:
            assert "auditd.service" not in off, (name, off)
        assert host["healthy"], name

    host = sorted(site.groups["app"])[0]
    lifecycle.ssh.remote(site, host, ["systemctl", "reset-failed", FAILING_UNIT])  # leftovers
    try:
        code, out = lifecycle.ssh.remote(site, host, [
            "systemd-run", f"--unit={FAILING_UNIT}", "--description=opsctl lab test: fails",
            "--property=CollectMode=inactive", "/bin/false"], timeout=30)
        assert code == 0, out

        def listed():
            code, status = opsctl_status(site)
            mine = hosts_by_name(status)[host]
            return (code, mine) if FAILING_UNIT in mine["failed_units"] else None

        seen = wait_for(listed, 90, every=5)
        assert seen, f"{FAILING_UNIT} not in status on {host} within 90 s"
        code, mine = seen
        assert code == 1 and mine["healthy"] is False
        assert mine["system_state"] == "degraded"
    finally:
        lifecycle.ssh.remote(site, host, ["systemctl", "reset-failed", FAILING_UNIT])

    def clean_again():
        code, status = opsctl_status(site)
        mine = hosts_by_name(status)[host]
        ok = (not mine["failed_units"] and mine["system_state"] == "running"
              and mine["healthy"])
        return (code, mine) if ok else None

    back = wait_for(clean_again, 90, every=5)
    assert back, f"{host} still lists a failed unit or a degraded systemd 90 s after reset-failed"
    if code_before == 0:
        assert wait_for(lambda: opsctl_status(site)[0] == 0, 60, every=5), \
            "the site was green before the test and did not come back to it"


def postgresql_service() -> str:
    """The unit the postgresql role runs (its `postgresql_service`), with the role's defaults."""
    import jinja2

    role = Path(__file__).resolve().parents[2] / "roles" / "postgresql"
    values = yaml.safe_load((role / "defaults" / "main.yml").read_text())
    template = yaml.safe_load((role / "vars" / "main.yml").read_text()).get(
        "postgresql_service") or values["postgresql_service"]
    env = jinja2.Environment()
    env.filters["bool"] = lambda v: v if isinstance(v, bool) else str(v).lower() in (
        "yes", "true", "1", "on")  # Ansible's
    return env.from_string(template).render(**values).strip()


def test_a_stopped_replica_and_a_stopped_agent_fire_their_alerts_and_they_resolve(reference):
    """Two independent faults at once (each alert waits out its own `for:`, so together they
    take the time of the slower): db2's PostgreSQL stops -> OpsctlReplicaDown within 150 s;
    app2's agent stops -> OpsctlHostDown within 180 s; status shows both; both resolve."""
    site, _ = reference
    replica = sorted(site.groups["db_replica"])[0]
    unit = postgresql_service()

    def replica_down():
        return [a for a in alerts(site, "OpsctlReplicaDown")
                if a["labels"].get("replica") == replica]

    def app2_down():
        return [a for a in alerts(site, "OpsctlHostDown") if a["labels"].get("host") == "app2"]

    assert lifecycle.ssh.remote(site, replica, ["systemctl", "stop", unit], timeout=60)[0] == 0
    started = time.monotonic()
    try:
        assert lifecycle.ssh.remote(site, "app2", ["systemctl", "stop", "opsctl-monitor"])[0] == 0
        fired = wait_for(replica_down, 150, every=5)
        assert fired, f"OpsctlReplicaDown for {replica} not in Alertmanager within 150 s"
        assert time.monotonic() - started < 150
        assert fired[0]["labels"]["severity"] == "critical"
        host_down = wait_for(app2_down, 180, every=5)
        assert host_down, "OpsctlHostDown for app2 did not reach Alertmanager within 3 minutes"
        assert host_down[0]["labels"]["severity"] == "critical"
        code, status = opsctl_status(site)
        assert code == 1
        assert {s["host"]: s["role"] for s in status["database"]}[replica] == "down"
        assert [r["streaming"] for r in status["replicas"]] == [False]
        assert {h["name"]: h["agent"] for h in status["hosts"]}["app2"] == "down"
        assert ("OpsctlHostDown", "app2") in {(a["name"], a["host"]) for a in status["alerts"]}
    finally:
        assert lifecycle.ssh.remote(site, replica, ["systemctl", "start", unit],
                                    timeout=120)[0] == 0
        assert lifecycle.ssh.remote(site, "app2", ["systemctl", "start", "opsctl-monitor"])[0] == 0
    restarted = time.monotonic()
    resolved = wait_for(lambda: not replica_down(), 180, every=5)
    assert resolved, f"OpsctlReplicaDown for {replica} still active 3 minutes after the start"
    left = 120 - (time.monotonic() - restarted)
    if app2_down() and not wait_for(lambda: not app2_down(), max(left, 0), every=5):
        pytest.fail("OpsctlHostDown for app2 still active 2 minutes after the agent came back")


def alerts(site, name: str) -> list[dict]:
    url = f"http://{monitoring_address(site)}:9093/api/v2/alerts?active=true"
    return [a for a in get_json(url) if a["labels"].get("alertname") == name]


def test_the_deployed_configuration_passes_promtool_and_amtool(reference):
    site, _ = reference
    mon = sorted(site.groups["monitoring"])[0]
    code, out = lifecycle.ssh.remote(site, mon, ["promtool", "check", "config",
                                                "/etc/prometheus/prometheus.yml"], timeout=60)
    assert code == 0 and "SUCCESS" in out, out
    code, out = lifecycle.ssh.remote(site, mon, ["amtool", "check-config",
                                                "/etc/prometheus/alertmanager.yml"], timeout=60)
    assert code == 0, out
