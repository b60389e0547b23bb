"""`opsctl backup run|list|verify|drill` on a site: pgBackRest on its backup host over SSH.

Every command starts by reading the repository on the backup host, so a host that is down
or a stanza that does not exist stops it before anything changes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opsctl import audit
from opsctl.apply.history import new_run_id
from opsctl.backup import drill as drills
from opsctl.backup.info import Backup, Stanza, parse_info, stanza
from opsctl.backup.policy import AgeVerdict, judge_age
from opsctl.db import ops as db_ops
from opsctl.errors import InvalidInput, OpsctlError, Problem
from opsctl.paths import ensure_private_dir, state_dir
from opsctl.roles import role_default
from opsctl.site.model import Site
from opsctl.transport import Transport, for_site

# The backup role's layout on the hosts, read from its defaults so that the role and these
# commands cannot disagree.
REPO_USER = role_default("backup", "backup_repo_user")
PG_USER = role_default("backup", "backup_pg_user")
DRILL_PATH = role_default("backup", "backup_drill_path")
DRILL_CONFIG = role_default("backup", "backup_drill_config")
# The repository host's PostgreSQL (backup_repo_packages) runs the drill's scratch cluster.
PG_BIN = f"/usr/lib/postgresql/{role_default('backup', 'backup_pg_version')}/bin"
# The scratch cluster's port: opsctl's own (it listens on a socket in the scratch directory
# only, so it never meets the firewall or the host's own cluster on backup_pg_port).
DRILL_PORT = 5499
TYPES = ("full", "diff", "incr")


class BackupFailed(OpsctlError):
    """pgBackRest reported a failure on a host."""

    exit_code = 1


@dataclass(frozen=True)
class Hosts:
    repo: str
    primary: str  # the inventory's db_primary: the leader only until the first switchover


def hosts(site: Site) -> Hosts:
    repo = site.hosts_in("backup")
    primary = site.hosts_in("db_primary")
    if not repo or not primary:
        raise InvalidInput([Problem(str(site.inventory_file), "groups", "backup needs a host "
                                    "in group `backup` and one in `db_primary`")])
    return Hosts(repo[0].name, primary[0].name)


def read_write_host(site: Site, t: Transport) -> str:
    """The database host that takes writes now: Patroni's leader (after a switchover, patch
    or failover that is not db_primary), the inventory's db_primary when Patroni is silent."""
    return db_ops.leader_name(site, t) or hosts(site).primary


def _pgbackrest(t: Transport, host: str, site: Site, *args: str, timeout: float = 300,
                check: bool = True) -> str:
    argv = ["runuser", "-u", REPO_USER, "--", "pgbackrest",
            f"--stanza={site.spec.backup.stanza}", *args]
    done = t.run(host, argv, timeout=timeout)
    if check and done.rc != 0:
        raise BackupFailed(f"{host}: pgbackrest {args[-1]} failed: {done.message}")
    return done.stdout


def read_stanza(site: Site, t: Transport | None = None) -> Stanza:
    t = t or for_site(site)
    text = _pgbackrest(t, hosts(site).repo, site, "--output=json", "info", timeout=60)
    return stanza(parse_info(text), site.spec.backup.stanza)


def run(site: Site, kind: str = "incr", t: Transport | None = None) -> Backup:
    """Take a backup of the primary into the repository; returns the new backup."""
    if kind not in TYPES:
        raise InvalidInput([Problem("--type", kind, f"expected one of {', '.join(TYPES)}")])
    t = t or for_site(site)
    before = read_stanza(site, t)
    try:
        _pgbackrest(t, hosts(site).repo, site, f"--type={kind}", "backup", timeout=6 * 3600)
    except OpsctlError as exc:
        audit.append("backup.run", {"site": site.name, "type": kind}, f"failed: {exc}")
        raise
    after = read_stanza(site, t)
    new = [b for b in after.backups if b.label not in {x.label for x in before.backups}]
    newest = max(new or after.backups, key=lambda b: b.stopped)
    audit.append("backup.run", {"site": site.name, "type": kind},
                 f"ok: {newest.label} ({newest.type}, {newest.delta} bytes)")
    return newest


@dataclass(frozen=True)
class VerifyReport:
    stanza: str
    repository_ok: bool
    repository_message: str
    age: AgeVerdict

    @property
    def ok(self) -> bool:
        return self.repository_ok and self.age.ok

    def as_dict(self) -> dict[str, Any]:
        return {"stanza": self.stanza, "ok": self.ok,
                "repository": {"ok": self.repository_ok, "message": self.repository_message},
                "age": self.age.as_dict()}


def verify(site: Site, t: Transport | None = None, now: datetime | None = None) -> VerifyReport:
    """pgBackRest's own verify of the repository, and the newest backup against the policy."""
    t = t or for_site(site)
    current = read_stanza(site, t)
    argv = ["runuser", "-u", REPO_USER, "--", "pgbackrest",
            f"--stanza={site.spec.backup.stanza}", "--log-level-console=info", "verify"]
    done = t.run(hosts(site).repo, argv, timeout=3600)
    summary = [ln for ln in done.stdout.splitlines() if "INFO: verify" not in ln
               and ("results" in ln or "ERROR" in ln or "WARN" in ln)]
    message = "; ".join(s.split(": ", 1)[-1].strip() for s in summary) or done.message
    age = judge_age(current, now or datetime.now(UTC), site.spec.backup.max_age_hours)
    report = VerifyReport(current.name, done.rc == 0 and current.ok,
                          message if done.rc else "pgbackrest verify found no error", age)
    audit.append("backup.verify", {"site": site.name},
                 ("ok: " if report.ok else "failed: ") + age.reason)
    return report


def parse_target(text: str) -> datetime:
    """An ISO 8601 time; without an offset it is the control node's local time."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput([Problem("--target-time", text, "not an ISO 8601 time, "
                                    "like 2026-11-29T10:30:00+08:00")]) from None
    return moment if moment.tzinfo else moment.astimezone()


def _psql(t: Transport, host: str, user: str, database: str, sql: str,
          extra: tuple[str, ...] = ()) -> str:
    argv = ["runuser", "-u", user, "--", f"{PG_BIN}/psql", "-X", "-q", "-A", "-t",
            "-v", "ON_ERROR_STOP=1", *extra, "-d", database, "-f", "-"]
    done = t.run(host, argv, stdin=sql, timeout=600)
    if done.rc != 0:
        raise drills.DrillError(f"{host}: psql on {database}: {done.message}")
    return done.stdout


def _sums(t: Transport, host: str, user: str, as_of: datetime | None,
          extra: tuple[str, ...] = ()) -> list[drills.TableSum]:
    sums: list[drills.TableSum] = []
    for database in _psql(t, host, user, "postgres", drills.DATABASES_SQL, extra).split():
        out = _psql(t, host, user, database, drills.table_sums_sql(as_of), extra)
        sums += drills.parse_sums(database, out)
    return sums


def drill(site: Site, target: datetime | None = None,
          t: Transport | None = None) -> drills.DrillReport:
    """Restore the repository to `target` (or now) in a scratch cluster and compare."""
    t = t or for_site(site)
    where = hosts(site)
    current = read_stanza(site, t)
    started = time.monotonic()
    leader = read_write_host(site, t)
    primary_now = datetime.fromtimestamp(float(_psql(
        t, leader, PG_USER, "postgres", "SELECT extract(epoch FROM now())")), UTC)
    as_of = target.astimezone(UTC) if target else primary_now
    usable = [b for b in current.backups if not b.error and b.stopped <= as_of]
    if target is not None and target > primary_now:
        raise InvalidInput([Problem("--target-time", target.isoformat(),
                                    f"in the future (the primary's clock says "
                                    f"{primary_now.isoformat(timespec='seconds')})")])
    if not usable:
        first = current.oldest
        reason = (f"before the first backup ({first.label} ended "
                  f"{first.stopped.isoformat(timespec='seconds')})" if first
                  else f"stanza {current.name} holds no backup yet")
        raise InvalidInput([Problem("--target-time", as_of.isoformat(timespec="seconds"),
                                    reason)])
    chosen = max(usable, key=lambda b: b.stopped)
    report = drills.DrillReport(
        id=new_run_id(), site=site.name, stanza=current.name,
        target=as_of.isoformat(), requested_target=target.isoformat() if target else None,
        backup=chosen.label, started=datetime.now(UTC).isoformat(timespec="seconds"))

    # A commit after the target lets recovery stop exactly there; `check` switches the WAL
    # segment and waits until the repository holds it.
    _psql(t, leader, PG_USER, "postgres", "SELECT txid_current()")
    _pgbackrest(t, where.repo, site, "check", timeout=300)
    source = _sums(t, leader, PG_USER, as_of)
    try:
        restored = _restore_and_measure(t, where.repo, site, report, as_of)
    except OpsctlError as exc:
        audit.append("backup.drill", {"site": site.name, "drill": report.id,
                                      "target": report.target}, f"error: {exc}")
        raise
    report.checks = drills.compare(source, restored)
    report.seconds = round(time.monotonic() - started, 1)
    _record(report)
    return report


def _restore_and_measure(t: Transport, repo: str, site: Site, report: drills.DrillReport,
                         as_of: datetime) -> list[drills.TableSum]:
    scratch = f"{DRILL_PATH}/{report.id}"
    as_repo = ["runuser", "-u", REPO_USER, "--"]
    stanza_name = site.spec.backup.stanza

    def step(argv: list[str], what: str, stdin: str | None = None, timeout: float = 600) -> None:
        done = t.run(repo, as_repo + argv, stdin=stdin, timeout=timeout)
        if done.rc != 0:
            log = t.run(repo, ["tail", "-n", "5", f"{scratch}/drill.log"], timeout=30)
            detail = log.stdout.strip().splitlines()[-1:] if log.rc == 0 else []
            raise drills.DrillError(f"{repo}: {what} failed: {done.message}"
                                    + (f" (server log: {detail[0]})" if detail else ""))

    restore_command = (f"pgbackrest --config={DRILL_CONFIG} --stanza={stanza_name} "
                       f"--pg1-path={scratch} archive-get %f \"%p\"")
    try:
        step(["mkdir", "-m", "0700", scratch], "making the scratch directory")
        step(["pgbackrest", f"--config={DRILL_CONFIG}", f"--stanza={stanza_name}",
              f"--pg1-path={scratch}", f"--set={report.backup}", "--type=time",
              f"--target={as_of.strftime('%Y-%m-%d %H:%M:%S.%f+00')}",
              "--target-action=promote", f"--recovery-option=restore_command={restore_command}",
              "restore"], "pgbackrest restore", timeout=6 * 3600)
        step(["tee", "-a", f"{scratch}/postgresql.conf"], "writing the drill configuration",
             stdin=_drill_conf(scratch))
        step(["tee", f"{scratch}/pg_hba.conf"], "writing the drill pg_hba.conf",
             stdin="local all all trust\n")
        step(["tee", f"{scratch}/pg_ident.conf"], "writing the drill pg_ident.conf", stdin="")
        step([f"{PG_BIN}/pg_ctl", "-D", scratch, "-l", f"{scratch}/drill.log", "-w",
              "-t", "3600", "start"], "starting the restored cluster", timeout=3700)
        _wait_promoted(t, repo, scratch)
        return _sums(t, repo, REPO_USER, None,
                     ("-h", scratch, "-p", str(DRILL_PORT), "-U", "postgres"))
    finally:
        t.run(repo, [*as_repo, f"{PG_BIN}/pg_ctl", "-D", scratch, "-m", "immediate", "-w",
                     "stop"], timeout=120)
        t.run(repo, ["rm", "-rf", "--one-file-system", scratch], timeout=600)


def _wait_promoted(t: Transport, repo: str, scratch: str, timeout: float = 3600) -> None:
    """Recovery replays WAL up to the target and then promotes; wait for read-write."""
    argv = ["runuser", "-u", REPO_USER, "--", f"{PG_BIN}/psql", "-X", "-A", "-t", "-h", scratch,
            "-p", str(DRILL_PORT), "-U", "postgres", "-d", "postgres",
            "-c", "SELECT pg_is_in_recovery()"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = t.run(repo, argv, timeout=60)
        if done.rc == 0 and done.stdout.strip() == "f":
            return
        alive = t.run(repo, ["runuser", "-u", REPO_USER, "--", f"{PG_BIN}/pg_ctl", "-D",
                             scratch, "status"], timeout=60)
        if alive.rc != 0:
            log = t.run(repo, ["tail", "-n", "3", f"{scratch}/drill.log"], timeout=30)
            raise drills.DrillError(f"{repo}: the restored cluster stopped during recovery: "
                                    + " | ".join(log.stdout.strip().splitlines()))
        time.sleep(1)
    raise drills.DrillError(f"{repo}: recovery did not finish within {timeout:.0f} s")


def _drill_conf(scratch: str) -> str:
    return "\n".join([
        "# opsctl backup drill: a throwaway cluster on a local socket only",
        f"port = {DRILL_PORT}",
        "listen_addresses = ''",
        f"unix_socket_directories = '{scratch}'",
        f"hba_file = '{scratch}/pg_hba.conf'",
        # The source's (Patroni's) names a file under /etc/patroni that the repository host lacks.
        f"ident_file = '{scratch}/pg_ident.conf'",
        "hot_standby = off",
        "archive_mode = off",
        "shared_buffers = 64MB",
        "ssl = off",
        "",
    ])


def drills_dir():
    return state_dir() / "drills"


def _record(report: drills.DrillReport) -> None:
    import json  # noqa: PLC0415

    path = ensure_private_dir(drills_dir()) / f"{report.id}.json"
    path.write_text(json.dumps(report.as_dict(), indent=2, ensure_ascii=False) + "\n")
    failed = [c for c in report.checks or [] if not c.ok]
    audit.append("backup.drill", {"site": report.site, "drill": report.id,
                                  "target": report.target, "backup": report.backup},
                 f"pass: {len(report.checks or [])} tables match" if report.ok else
                 f"fail: {len(failed)} of {len(report.checks or [])} tables differ")
