"""The alert rules: promtool accepts them, its unit tests show each alert firing and
resolving, and every metric they name is one the agent (or the access gateway) exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from gateway_code import gateway_module
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.agent import build_registry
from monitor.aide_status import condense
from monitor.collectors.systemd import SystemdCollector
from monitor.config import AgentConfig

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "monitor" / "rules"
# Series Prometheus makes itself for every target; not the agent's.
AIDE_LOG = ROOT / "tests" / "unit" / "facts" / "aide" / "changed.log"
PROMETHEUS_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def promtool() -> str:
    venv_bin = str(Path(sys.executable).parent)
    found = shutil.which("promtool") or shutil.which("promtool", path=venv_bin)
    if not found:
        pytest.skip("promtool not found (./setup puts it in .venv/bin)")
    return found


def test_promtool_accepts_the_rules():
    done = subprocess.run([promtool(), "check", "rules", str(RULES / "opsctl.rules.yml")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_each_alert_fires_and_resolves_in_promtools_unit_tests():
    tests = sorted((RULES / "tests").glob("*.yml"))
    done = subprocess.run([promtool(), "test", "rules", *map(str, tests)], cwd=RULES / "tests",
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    tested = set()
    for path in tests:
        for case in yaml.safe_load(path.read_text())["tests"]:
            tested |= {t["alertname"] for t in case.get("alert_rule_test", [])
                       if t.get("exp_alerts")}
    assert tested == set(alert_names()), "every alert has a test in which it fires"


def alert_names() -> list[str]:
    groups = yaml.safe_load((RULES / "opsctl.rules.yml").read_text())["groups"]
    return [r["alert"] for g in groups for r in g["rules"] if "alert" in r]


def metric_names_in_rules() -> set[str]:
    groups = yaml.safe_load((RULES / "opsctl.rules.yml").read_text())["groups"]
    names = set()
    for rule in (r for g in groups for r in g["rules"]):
        names |= set(re.findall(r"\b((?:opsctl|access_gateway)_[a-z0-9_]+|up)\b",
                                rule["expr"]))
    return names


def gateway_registry(tmp_path: Path):
    """The access gateway's metrics (components/access-gateway/gateway_metrics.py: the
    component ships it beside its main.py, so it is loaded from its file)."""
    module = gateway_module("gateway_metrics")
    class Queue:  # the provinces' pushes queued for the national Prometheus
        def depth(self) -> tuple[int, int]:
            return 2, 1024

    metrics = module.GatewayMetrics({"hubei": {"upload_interval_hours": 24}}, tmp_path,
                                    queue=Queue())
    metrics.upload("hubei", 10, "accepted", records=1)
    metrics.upload("other", 10, "rejected", ["province: missing or not a site name"])
    metrics.pushed("hubei", "accepted", samples=3)
    with metrics.timer("/uploads"):
        pass
    return metrics.registry


FACTS = ROOT / "tests" / "unit" / "facts"


def platform_collectors(tmp_path: Path) -> list:
    """The database, backup and scheduler collectors as a primary, a replica, the backup host
    and a host with a job history would run them (recorded psql output, written files)."""
    from monitor.collectors.pgbackrest import PgBackRestCollector
    from monitor.collectors.postgresql import PostgresCollector, PostgresSettings
    from monitor.collectors.scheduler import SchedulerCollector
    from scheduler.history import History

    def recorded(name: str):
        text = (FACTS / "postgresql" / name).read_text()
        return lambda _settings: (0, text)

    status = tmp_path / "pgbackrest-status.json"
    status.write_text('{"written": 1, "stanzas": [{"name": "main", "status_code": 0, '
                      '"backups": 2, "newest": {"full": 1, "incr": 2}}]}')
    db = tmp_path / "history.db"
    with History(db) as history:
        rid = history.start("log-cleanup", 1.0, 1, 1.0)
        history.finish(rid, 2.0, "success", 0)
        history.save_windows({"log-cleanup": (90000.0, "")})
    return [PostgresCollector(PostgresSettings(), run=recorded("primary.txt")),
            PostgresCollector(PostgresSettings(), run=recorded("replica.txt")),
            PgBackRestCollector(status, max_age_hours=26),
            SchedulerCollector(db)]


def recorded_systemd(tmp_path: Path) -> SystemdCollector:
    """systemctl needs systemd as PID 1, which this machine may lack: the same collector, fed
    what systemctl prints on a degraded host (the lab test scrapes the real thing)."""
    disabled = tmp_path / "disabled-units.d"
    disabled.mkdir()
    (disabled / "auditd.service").write_text("kernel audit is not available to this host\n")
    show = (FACTS / "systemd" / "show-degraded.txt").read_text()
    return SystemdCollector(("ssh.service",), disabled, show=lambda _units: show,
                            system_state=lambda: "degraded\n")


def aide_status(tmp_path: Path) -> Path:
    """What the root timer writes from a recorded daily check that found changes."""
    baseline, status = tmp_path / "aide.db", tmp_path / "aide-status.json"
    baseline.write_bytes(b"")
    status.write_text(json.dumps(condense(AIDE_LOG, baseline, now=time.time())))
    return status


def exported_by_agent(tmp_path: Path) -> set[str]:
    compliance = tmp_path / "compliance.json"
    compliance.write_text('{"finished": 1, "counts": {"pass": 1}, '
                          '"password_expiry": {"ops": 1765000000}}')
    cert = tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=x",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(cert)],
                   check=True, capture_output=True)
    config = AgentConfig(units=("ssh.service",), certificates=(cert,),
                         compliance_file=compliance, aide_status_file=aide_status(tmp_path))
    registry = build_registry(config, systemd=recorded_systemd(tmp_path))
    names = set()
    for collector in platform_collectors(tmp_path):
        names |= {m.name for m in collector.collect()}
        names |= {s.name for m in collector.collect() for s in m.samples}
    text = generate_latest(registry).decode() + generate_latest(gateway_registry(tmp_path)).decode()
    return names | {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def test_every_metric_a_rule_names_is_exported(tmp_path):
    exported = exported_by_agent(tmp_path) | PROMETHEUS_OWN
    missing = metric_names_in_rules() - exported
    assert not missing, f"rules name metrics nobody exports: {sorted(missing)}"


def test_promtool_check_metrics_is_clean_on_the_agents_exposition(tmp_path):
    compliance = tmp_path / "compliance.json"
    compliance.write_text('{"finished": 1, "counts": {"pass": 1}, '
                          '"password_expiry": {"ops": 1765000000}}')
    registry = build_registry(AgentConfig(compliance_file=compliance,
                                          aide_status_file=aide_status(tmp_path)),
                              systemd=recorded_systemd(tmp_path))
    # one of each: a registry refuses two collectors of the same metric names
    for collector in platform_collectors(tmp_path)[1:]:
        registry.register(collector)
    done = subprocess.run([promtool(), "check", "metrics"], input=generate_latest(registry),
                          capture_output=True, timeout=60)
    assert done.returncode == 0, (done.stdout + done.stderr).decode()


def test_promtool_check_metrics_is_clean_on_the_gateways_exposition(tmp_path):
    done = subprocess.run([promtool(), "check", "metrics"],
                          input=generate_latest(gateway_registry(tmp_path)),
                          capture_output=True, timeout=60)
    assert done.returncode == 0, (done.stdout + done.stderr).decode()
