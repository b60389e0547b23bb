"""opsctl backup without hosts: pgBackRest info parsing (a recorded sample), the age policy,
the drill's comparison and SQL, and bad input stopping before anything changes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opsctl import audit
from opsctl.backup import ops
from opsctl.backup.drill import DrillError, TableSum, compare, parse_sums, table_sums_sql
from opsctl.backup.info import InfoUnreadable, parse_info, stanza
from opsctl.backup.policy import judge_age
from opsctl.errors import InvalidInput
from opsctl.site import load_site
from opsctl.transport import HostUnreachable, Result

# `pgbackrest --output=json info` on the lab's bak1: a full, an incremental on it, a full.
INFO = (Path(__file__).parent / "facts" / "pgbackrest" / "info.json").read_text()


def test_info_parses_the_recorded_repository():
    [main] = parse_info(INFO)
    assert main.name == "main" and main.ok and main.cipher == "aes-256-cbc"
    assert [b.type for b in main.backups] == ["full", "incr", "full"]
    incr = main.backups[1]
    assert incr.prior == main.backups[0].label
    assert incr.stopped == datetime.fromtimestamp(1795920005, UTC)
    assert incr.size > incr.delta > 0 and incr.repo_size >= incr.repo_delta > 0
    assert main.oldest.label == "20261129-103412F"
    assert main.newest.label == "20261129-104119F"
    assert main.wal_min <= main.backups[0].wal_start <= main.wal_max
    assert json.loads(json.dumps(main.as_dict()))["backups"][2]["type"] == "full"


def test_a_held_backup_lock_is_a_running_backup():
    assert not stanza(parse_info(INFO), "main").backup_running
    data = json.loads(INFO)
    data[0]["status"]["lock"]["backup"]["held"] = True
    running = stanza(parse_info(json.dumps(data)), "main")
    assert running.backup_running and running.as_dict()["backup_running"] is True


def test_info_without_backups_and_garbage():
    raw = json.loads(INFO)
    raw[0]["backup"] = []
    [empty] = parse_info(json.dumps(raw))
    assert empty.backups == [] and empty.newest is None
    with pytest.raises(InfoUnreadable):
        parse_info("not json")
    with pytest.raises(InfoUnreadable):
        parse_info('[{"name": "main"}]')
    with pytest.raises(InfoUnreadable, match="no stanza 'other'"):
        stanza(parse_info(INFO), "other")


def test_age_policy_passes_a_fresh_backup_and_fails_a_stale_one():
    [main] = parse_info(INFO)
    newest = main.newest.stopped
    fresh = judge_age(main, newest + timedelta(hours=25), max_age_hours=26)
    assert fresh.ok and fresh.newest == "20261129-104119F"
    stale = judge_age(main, newest + timedelta(hours=27), max_age_hours=26)
    assert not stale.ok and "27.0 h old, policy allows 26 h" in stale.reason


def test_age_policy_ignores_failed_backups_and_an_empty_stanza():
    raw = json.loads(INFO)
    raw[0]["backup"][2]["error"] = True
    [main] = parse_info(json.dumps(raw))
    at = main.backups[2].stopped + timedelta(hours=1)
    verdict = judge_age(main, at, max_age_hours=1)
    assert verdict.newest == "20261129-103412F_20261129-104002I"
    raw[0]["backup"] = []
    [empty] = parse_info(json.dumps(raw))
    assert not judge_age(empty, at, 26).ok


def test_compare_names_every_kind_of_difference():
    op, q = "operational", "query"
    source = [TableSum(op, "public.a", 10, "x"), TableSum(op, "public.b", 5, "y"),
              TableSum(q, "public.c", 3, "z"), TableSum(q, "public.gone", 1, "g")]
    restored = [TableSum(op, "public.a", 10, "x"), TableSum(op, "public.b", 4, "w"),
                TableSum(q, "public.c", 3, "other"), TableSum(q, "public.new", 2, "n")]
    checks = {c.table: c for c in compare(source, restored)}
    assert checks["public.a"].ok and checks["public.a"].reason == "match"
    assert checks["public.b"].reason == "rows differ (5 vs 4)"
    assert checks["public.c"].reason == "row contents differ"
    assert checks["public.gone"].reason == "missing from the restored copy"
    assert checks["public.new"].reason == "only in the restored copy"
    assert [c.table for c in compare(source, restored)] == sorted(checks)


def test_parse_sums_and_the_sql_it_reads():
    sums = parse_sums("classified", "public.parcel|12|abc\npublic.x|y|0|\n\n")
    assert sums == [TableSum("classified", "public.parcel", 12, "abc"),
                    TableSum("classified", "public.x|y", 0, "")]
    sql = table_sums_sql(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert "pg_xact_commit_timestamp(t.xmin) <= ''2026-01-02T03:04:05+00:00''" in sql
    assert "SET TimeZone = 'UTC'" in sql and sql.rstrip().endswith("\\gexec")
    assert "pg_xact_commit_timestamp" not in table_sums_sql(None)


class FakeTransport:
    """Answers pgbackrest info with the recorded sample, Patroni's /cluster (`leader` leads;
    None: Patroni does not answer) and the primary's clock; records calls."""

    def __init__(self, now: datetime, down: set[str] = frozenset(),
                 leader: str | None = None) -> None:
        self.now, self.down, self.leader, self.calls = now, down, leader, []

    def run(self, host, argv, stdin=None, timeout=120):
        if host in self.down:
            raise HostUnreachable(f"{host}: unreachable over SSH (No route to host)")
        self.calls.append((host, argv, stdin))
        if argv[0] == "python3":  # Patroni's REST API, read on a database host
            if self.leader is None:
                return Result(7, "", "Connection refused")
            members = [{"name": n, "role": "leader" if n == self.leader else "replica",
                        "state": "running", "timeline": 3, "host": n} for n in ("db1", "db2")]
            return Result(0, json.dumps({"cluster": {"members": members}, "config": {}}), "")
        if "info" in argv:
            return Result(0, INFO, "")
        if stdin and "extract(epoch FROM now())" in stdin:
            return Result(0, f"{self.now.timestamp()}\n", "")
        if "start" in argv:
            return Result(1, "", "pg_ctl: could not start server")
        return Result(0, "", "")


def test_parse_target_accepts_iso_and_refuses_words():
    assert ops.parse_target("2026-11-29T10:30:00+08:00").utcoffset() == timedelta(hours=8)
    assert ops.parse_target("2026-11-29 10:30").tzinfo is not None
    with pytest.raises(InvalidInput, match="not an ISO 8601 time"):
        ops.parse_target("yesterday")


def test_a_target_before_the_first_backup_changes_nothing(state_dir):
    site = load_site("reference")
    [main] = parse_info(INFO)
    fake = FakeTransport(main.newest.stopped + timedelta(hours=1))
    with pytest.raises(InvalidInput, match="before the first backup \\(20261129-103412F"):
        ops.drill(site, main.oldest.stopped - timedelta(seconds=1), fake)
    with pytest.raises(InvalidInput, match="in the future"):
        ops.drill(site, fake.now + timedelta(minutes=5), fake)
    ran = [" ".join(argv) for _host, argv, _stdin in fake.calls]
    assert all("restore" not in r and "txid_current" not in r and "check" not in r for r in ran)
    assert not (state_dir / "drills").exists()


def test_a_target_picks_the_newest_backup_that_ended_before_it(state_dir):
    site = load_site("reference")
    [main] = parse_info(INFO)
    fake = FakeTransport(main.newest.stopped + timedelta(hours=1))
    with pytest.raises(DrillError, match="starting the restored cluster failed"):
        ops.drill(site, main.backups[1].stopped + timedelta(seconds=10), fake)
    restore = [argv for _h, argv, _s in fake.calls if "restore" in argv]
    assert restore and "--set=20261129-103412F_20261129-104002I" in restore[0]
    # The scratch cluster is stopped and removed even when the drill fails.
    assert fake.calls[-1][1][:2] == ["rm", "-rf"]
    assert any(r["action"] == "backup.drill" and r["result"].startswith("error")
               for r in audit.records())


def test_the_drill_reads_the_member_patroni_says_leads_not_the_inventorys_primary(state_dir):
    # After `opsctl patch` or a failover, db2 leads and db1 (db_primary) is a read-only
    # replica where txid_current() fails: the drill's source side must follow the leader.
    site = load_site("reference")
    [main] = parse_info(INFO)
    for leader, expected in (("db2", "db2"), (None, "db1")):
        fake = FakeTransport(main.newest.stopped + timedelta(hours=1), leader=leader)
        with pytest.raises(DrillError):
            ops.drill(site, None, fake)
        sql_hosts = {host for host, argv, stdin in fake.calls
                     if argv[:3] == ["runuser", "-u", ops.PG_USER] and stdin}
        assert sql_hosts == {expected}, (leader, sql_hosts)


def test_backup_host_down_is_one_line_and_nothing_runs(state_dir):
    site = load_site("reference")
    fake = FakeTransport(datetime.now(UTC), down={"bak1"})
    for action in (lambda: ops.run(site, "full", fake), lambda: ops.verify(site, fake),
                   lambda: ops.drill(site, None, fake), lambda: ops.read_stanza(site, fake)):
        with pytest.raises(HostUnreachable) as caught:
            action()
        assert caught.value.exit_code == 1 and "\n" not in str(caught.value)
    assert fake.calls == []
    assert not any(r["action"] == "backup.run" and r["result"].startswith("ok")
                   for r in audit.records())


def test_run_refuses_an_unknown_type(state_dir):
    with pytest.raises(InvalidInput, match="expected one of full, diff, incr"):
        ops.run(load_site("reference"), "weekly", FakeTransport(datetime.now(UTC)))
