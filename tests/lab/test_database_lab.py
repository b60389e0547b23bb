"""The database cluster and storage backup end to end, on the session's reference lab.

The replica serves `query` read-only; an app host reaches operational and query and is
refused classified, lb1 reaches no database; a point-in-time drill restores exactly what was
committed by the target and a drill to now everything; bad input changes nothing.
Connection tests run from inside the hosts (psql on app1, a socket on lb1).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime

from opsctl.lab import lifecycle
from opsctl.secrets import secrets_dir

TABLE = "drill_rows"


def on(site, host: str, *command: str, timeout: float = 120) -> tuple[int, str]:
    return lifecycle.ssh.remote(site, host, list(command), timeout=timeout)


def sql(site, host: str, database: str, statement: str) -> str:
    code, out = on(site, host, "runuser", "-u", "postgres", "--", "psql", "-X", "-A", "-t",
                   "-q", "-v", "ON_ERROR_STOP=1", "-d", database, "-c", statement)
    assert code == 0, out
    return "\n".join(ln for ln in out.splitlines() if "could not change directory" not in ln)


def opsctl(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "opsctl", *args], capture_output=True,
                          text=True, check=False, timeout=timeout)


def test_the_cluster_converges(reference):
    """The first converge built the cluster; that a second apply changes nothing on any host,
    database hosts included, is test_reference_lab's (one no-change apply per session)."""
    site, first = reference
    assert first.result == "ok", first.failures
    assert {h: first.hosts[h]["status"] for h in site.groups["db"]} == \
        dict.fromkeys(site.groups["db"], "changed")  # built, not found built


def test_the_replica_streams_over_tls_and_serves_query_read_only(reference):
    site, _ = reference
    assert sql(site, "db1", "postgres", "SELECT application_name || ' ' || state || ' ' || ssl "
               "FROM pg_stat_replication JOIN pg_stat_ssl USING (pid)") == "db2 streaming true"
    marker = f"m{time.time_ns()}"
    sql(site, "db1", "query", "CREATE TABLE IF NOT EXISTS lookup (k text PRIMARY KEY)")
    sql(site, "db1", "query", f"INSERT INTO lookup VALUES ('{marker}')")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if sql(site, "db2", "query", f"SELECT count(*) FROM lookup WHERE k = '{marker}'") == "1":
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the replica did not show the primary's row within 10 s")
    assert sql(site, "db2", "query", "SELECT pg_is_in_recovery()") == "t"
    code, out = on(site, "db2", "runuser", "-u", "postgres", "--", "psql", "-X", "-d", "query",
                   "-c", "INSERT INTO lookup VALUES ('x')")
    assert code != 0 and "read-only transaction" in out


def app_psql(site, host: str, database: str) -> tuple[int, str]:
    password = (secrets_dir(site.name) / "postgresql_app").read_text().split()[0]
    db1 = site.hosts["db1"].address
    return on(site, host, "env", f"PGPASSWORD={password}", "psql", "-X", "-A", "-t",
              f"host={db1} dbname={database} user=app sslmode=verify-full "
              "sslrootcert=/etc/opsctl/pki/ca.crt connect_timeout=5",
              "-c", "SELECT current_database() || ' ' || ssl FROM pg_stat_ssl "
              "WHERE pid = pg_backend_pid()")


def test_an_app_host_reaches_operational_and_query_and_is_refused_classified(reference):
    site, _ = reference
    for database in ("operational", "query"):
        code, out = app_psql(site, "app1", database)
        assert code == 0 and out.endswith(f"{database} true"), out
    code, out = app_psql(site, "app1", "classified")
    assert code != 0 and "pg_hba.conf rejects connection" in out, out


def test_lb1_cannot_reach_a_database_host(reference):
    site, _ = reference
    for db in ("db1", "db2"):
        address = site.hosts[db].address
        code, out = on(site, "lb1", "python3", "-c",
                       "import socket,sys\ntry:\n socket.create_connection"
                       f"(('{address}', 5432), 3)\nexcept OSError:\n sys.exit(7)")
        assert code == 7, (db, out)


def count_in_drill(report: dict) -> int:
    [row] = [t for t in report["tables"] if t["table"] == f"public.{TABLE}"]
    assert row["ok"], row
    return row["restored_rows"]


def test_a_drill_restores_exactly_what_was_committed_by_the_target(reference):
    site, _ = reference
    n, m, k = 500, 300, 200
    sql(site, "db1", "operational", f"CREATE TABLE {TABLE} (id bigserial PRIMARY KEY, "
        "batch text, at timestamptz DEFAULT clock_timestamp())")
    insert = f"INSERT INTO {TABLE} (batch) SELECT '{{}}' FROM generate_series(1, {{}})"
    sql(site, "db1", "operational", insert.format("n", n))
    done = opsctl("backup", "run", "--site", str(site.directory), "--type", "full", "-o", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["type"] == "full"
    sql(site, "db1", "operational", insert.format("m", m))
    time.sleep(1)
    target = datetime.fromtimestamp(float(sql(site, "db1", "postgres",
                                              "SELECT extract(epoch FROM now())")), UTC)
    time.sleep(1)
    sql(site, "db1", "operational", insert.format("k", k))

    done = opsctl("backup", "drill", "--site", str(site.directory), "--target-time",
                  target.isoformat(), "-o", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    to_target = json.loads(done.stdout)
    assert to_target["result"] == "pass" and count_in_drill(to_target) == n + m

    done = opsctl("backup", "drill", "--site", str(site.directory), "-o", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    latest = json.loads(done.stdout)
    assert latest["result"] == "pass" and count_in_drill(latest) == n + m + k
    assert {"classified", "operational"} <= {t["database"] for t in latest["tables"]}

    listed = json.loads(opsctl("backup", "list", "--site", str(site.directory),
                               "-o", "json").stdout)
    assert listed["cipher"] == "aes-256-cbc" and len(listed["backups"]) >= 2
    done = opsctl("backup", "verify", "--site", str(site.directory), "-o", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["ok"]


def test_bad_input_is_one_line_and_changes_nothing(reference):
    site, _ = reference
    before = opsctl("backup", "list", "--site", str(site.directory), "-o", "json")
    done = opsctl("backup", "drill", "--site", str(site.directory),
                  "--target-time", "2001-01-01T00:00:00+00:00")
    assert done.returncode == 2 and "before the first backup" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1

    assert lifecycle.stop_host(site.name, "bak1")
    try:
        done = opsctl("backup", "run", "--site", str(site.directory), "--type", "full",
                      timeout=120)
        assert done.returncode == 1 and "bak1" in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    finally:
        lifecycle.up(site)
    after = opsctl("backup", "list", "--site", str(site.directory), "-o", "json")
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout)["backups"] == json.loads(before.stdout)["backups"]
