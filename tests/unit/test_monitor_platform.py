"""The database and backup collectors against recorded outputs: psql on a primary, a primary
whose replica stopped, a replica, a server that does not answer; `pgbackrest info` condensed
into the status file and read back; their configuration keys."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from monitor import pgbackrest_status
from monitor.collectors.pgbackrest import PgBackRestCollector
from monitor.collectors.postgresql import PostgresCollector, PostgresSettings, parse, psql_argv
from monitor.config import ConfigError, load_config

FACTS = Path(__file__).parent / "facts"


def registry_of(collector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def recorded(name: str, code: int = 0):
    text = (FACTS / "postgresql" / name).read_text() if name else ""
    return lambda _settings: (code, text)


def test_primary_reports_its_replicas_slot_and_lag():
    r = registry_of(PostgresCollector(PostgresSettings(), run=recorded("primary.txt")))
    assert r.get_sample_value("opsctl_postgresql_up") == 1
    assert r.get_sample_value("opsctl_postgresql_in_recovery") == 0
    assert r.get_sample_value("opsctl_postgresql_replication_slot_active", {"slot": "db2"}) == 1
    assert r.get_sample_value("opsctl_postgresql_replica_streaming", {"replica": "db2"}) == 1
    assert r.get_sample_value("opsctl_postgresql_replica_lag_bytes", {"replica": "db2"}) == 0
    assert r.get_sample_value("opsctl_postgresql_replica_lag_seconds",
                              {"replica": "db2"}) == 0
    assert r.get_sample_value("opsctl_postgresql_replay_lag_seconds") is None


def test_a_stopped_replica_shows_as_an_inactive_slot_without_lag():
    r = registry_of(PostgresCollector(PostgresSettings(),
                                      run=recorded("primary-replica-down.txt")))
    assert r.get_sample_value("opsctl_postgresql_replication_slot_active", {"slot": "db2"}) == 0
    assert r.get_sample_value("opsctl_postgresql_replica_lag_bytes", {"replica": "db2"}) is None


def test_an_expected_replica_that_patroni_forgot_still_shows_as_not_streaming():
    """Patroni drops the slot of a member whose Patroni stopped: no slot, no walsender; the
    expected member list is what still names it."""
    settings = PostgresSettings(replicas=("db2",))
    r = registry_of(PostgresCollector(settings, run=recorded("primary-replica-gone.txt")))
    assert r.get_sample_value("opsctl_postgresql_replica_streaming", {"replica": "db2"}) == 0
    assert r.get_sample_value("opsctl_postgresql_replication_slot_active", {"slot": "db2"}) is None
    r = registry_of(PostgresCollector(settings, run=recorded("primary.txt")))
    assert r.get_sample_value("opsctl_postgresql_replica_streaming", {"replica": "db2"}) == 1


def test_replica_reports_replay_lag_and_streaming():
    r = registry_of(PostgresCollector(PostgresSettings(), run=recorded("replica.txt")))
    assert r.get_sample_value("opsctl_postgresql_in_recovery") == 1
    assert r.get_sample_value("opsctl_postgresql_wal_receiver_streaming") == 1
    assert r.get_sample_value("opsctl_postgresql_replay_lag_bytes") == 0
    assert r.get_sample_value("opsctl_postgresql_replication_slot_active", {"slot": "db2"}) is None


@pytest.mark.parametrize("code, output", [(2, ""), (127, ""), (124, ""), (0, "garbage\n")])
def test_a_server_that_does_not_answer_is_down_and_nothing_else(code, output):
    r = registry_of(PostgresCollector(PostgresSettings(), run=lambda _s: (code, output)))
    assert r.get_sample_value("opsctl_postgresql_up") == 0
    assert r.get_sample_value("opsctl_postgresql_in_recovery") is None
    assert parse(code, output).up is False


def test_the_agent_connects_by_socket_as_its_role_without_a_password():
    argv = psql_argv(PostgresSettings(socket_dir="/run/pg", port=5433))
    assert argv[argv.index("-h") + 1] == "/run/pg" and argv[argv.index("-p") + 1] == "5433"
    assert argv[argv.index("-U") + 1] == "opsctl_monitor" and "-w" in argv
    assert not any("password" in a.lower() for a in argv)


def test_pgbackrest_info_condensed_keeps_the_newest_of_each_type_and_no_secrets():
    info = json.loads((FACTS / "pgbackrest" / "info.json").read_text())
    data = pgbackrest_status.condense(info, now=1795920000.0)
    [stanza] = data["stanzas"]
    assert stanza["name"] == "main" and stanza["status_code"] == 0
    stops = {b["type"]: [] for b in info[0]["backup"]}
    for b in info[0]["backup"]:
        stops[b["type"]].append(b["timestamp"]["stop"])
    assert stanza["newest"] == {t: float(max(v)) for t, v in stops.items()}
    assert stanza["backups"] == len(info[0]["backup"])
    assert "cipher" not in json.dumps(data) and "repo" not in json.dumps(data)


def test_status_writer_runs_pgbackrest_and_replaces_the_file(tmp_path):
    fake = tmp_path / "pgbackrest"
    fake.write_text("#!/bin/sh\ncat " + str(FACTS / "pgbackrest" / "info.json") + "\n")
    fake.chmod(0o755)
    out = tmp_path / "status.json"
    assert pgbackrest_status.main(["--output", str(out), "--pgbackrest", str(fake)]) == 0
    assert json.loads(out.read_text())["stanzas"][0]["name"] == "main"
    assert oct(out.stat().st_mode & 0o777) == "0o640"
    broken = tmp_path / "broken"
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    assert pgbackrest_status.main(["--output", str(out), "--pgbackrest", str(broken)]) == 1
    assert json.loads(out.read_text())["error"] is True


def test_backup_collector_exports_newest_backups_and_the_policy(tmp_path):
    info = json.loads((FACTS / "pgbackrest" / "info.json").read_text())
    status = tmp_path / "status.json"
    status.write_text(json.dumps(pgbackrest_status.condense(info, now=1795920000.0)))
    r = registry_of(PgBackRestCollector(status, max_age_hours=26))
    assert r.get_sample_value("opsctl_pgbackrest_status_readable") == 1
    assert r.get_sample_value("opsctl_pgbackrest_status_timestamp_seconds") == 1795920000.0
    assert r.get_sample_value("opsctl_pgbackrest_stanza_ok", {"stanza": "main"}) == 1
    assert r.get_sample_value("opsctl_pgbackrest_backup_max_age_seconds",
                              {"stanza": "main"}) == 26 * 3600
    full = r.get_sample_value("opsctl_pgbackrest_backup_last_timestamp_seconds",
                              {"stanza": "main", "type": "full"})
    assert full == max(b["timestamp"]["stop"] for b in info[0]["backup"] if b["type"] == "full")


def test_backup_collector_without_its_file_says_unreadable(tmp_path):
    r = registry_of(PgBackRestCollector(tmp_path / "missing.json", 26))
    assert r.get_sample_value("opsctl_pgbackrest_status_readable") == 0
    assert r.get_sample_value("opsctl_pgbackrest_status_timestamp_seconds") is None


def test_promtool_check_metrics_on_the_primarys_exposition(tmp_path):
    found = shutil.which("promtool") or shutil.which("promtool",
                                                       path=str(Path(sys.executable).parent))
    if not found:
        pytest.skip("promtool not found (./setup puts it in .venv/bin)")
    text = generate_latest(registry_of(
        PostgresCollector(PostgresSettings(), run=recorded("primary.txt"))))
    done = subprocess.run([found, "check", "metrics"], input=text, capture_output=True,
                          timeout=60)
    assert done.returncode == 0, (done.stdout + done.stderr).decode()


@pytest.mark.parametrize("config, fragment", [
    ({"postgresql": "yes"}, "postgresql: expected a mapping"),
    ({"postgresql": {"port": "x"}}, "postgresql.port: expected a port number"),
    ({"postgresql": {"password": "x"}}, "postgresql.password: unknown key"),
    ({"pgbackrest": {}}, "pgbackrest.status_file: expected"),
    ({"pgbackrest": {"status_file": "/x", "max_age_hours": -1}}, "pgbackrest.max_age_hours"),
])
def test_database_and_backup_configuration_mistakes(tmp_path, config, fragment):
    path = tmp_path / "agent.json"
    path.write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=fragment):
        load_config(path)


def test_database_and_backup_configuration(tmp_path):
    path = tmp_path / "agent.json"
    path.write_text(json.dumps({"postgresql": {"port": 5433},
                                "pgbackrest": {"status_file": "/s.json", "max_age_hours": 26}}))
    config = load_config(path)
    assert config.postgresql == PostgresSettings(port=5433)
    assert config.pgbackrest_status == Path("/s.json") and config.backup_max_age_hours == 26
