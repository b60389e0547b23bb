"""pgBackRest against pg_basebackup and pg_dump | pg_restore on the same data, and the RPO.

Against a converged lab (any site; db1 leading, bak1 the repository), in one run:
1. data: `pgbench -i -s SCALE` into `operational` on the leader (scale 140 is about 2.1 GB);
2. full backup, side by side, same source:
   - pgBackRest (`opsctl backup run --type full`: bak1 pulls over SSH, zst, encrypted);
   - pg_basebackup on bak1 from the leader over TLS as the replication role, tar + gzip
     (`-Ft -z`, the usual form; the lab's hosts have no zstd command to unpack zstd tars);
   - pg_dump -Fc of `operational` on the leader (local socket);
3. restore, each into a scratch cluster started until it accepts queries:
   - pgBackRest restore on bak1 (`--type=immediate`: the backup's consistent point);
   - pg_basebackup's tar unpacked on bak1 and started;
   - pg_restore -j 2 (no owners or grants: the scratch cluster lacks the site's roles) into a
     fresh initdb cluster on the leader (no replication);
4. RPO with the archive alone: inserts acknowledged to a client on app1 for `--rpo-seconds`,
   then db1 and db2 are killed without warning (both database hosts lost), the repository is
   restored to its end on bak1, and the gap between the newest acknowledged insert and the
   newest restored one is measured (the server's own timestamps).

Step 4 wrecks the cluster; the lab is for throwing away afterwards.

    OPSCTL_STATE_DIR=... .venv/bin/python tests/bench/bench_backup.py --site DIR [--scale 140]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

from bench_db import crash  # the same kill without warning

from opsctl.backup import ops as backup
from opsctl.secrets import secrets_dir
from opsctl.site import load_site
from opsctl.transport import for_site

PG = "/usr/lib/postgresql/15/bin"
CA = "/etc/opsctl/pki/ca.crt"
SCRATCH = "/var/lib/pgbackrest-drill/bench"


class Lab:
    """The site's hosts by function (a province's copy names them PREFIX-db1 and so on)."""

    def __init__(self, site) -> None:
        self.site, self.hosts = site, for_site(site)
        self.leader = sorted(site.groups["db_primary"])[0]
        self.db = sorted(site.groups["db"])
        self.repo = sorted(site.groups["backup"])[0]
        self.app = sorted(site.groups["app"])[0]

    def run(self, host: str, argv: list[str], timeout: float = 7200, ok: bool = True) -> str:
        done = self.hosts.run(host, argv, timeout=timeout)
        if ok and done.rc != 0:
            raise SystemExit(f"{host}: {' '.join(argv)[:200]}: {done.message}")
        return done.stdout

    def sh(self, host: str, script: str, user: str | None = None, **kw) -> str:
        argv = ["runuser", "-u", user, "--"] if user else []
        return self.run(host, [*argv, "bash", "-c", script], **kw)

    def timed(self, host: str, script: str, user: str | None = None) -> float:
        start = time.monotonic()
        self.sh(host, script, user)
        return time.monotonic() - start

    def addr(self, host: str) -> str:
        return str(self.site.hosts[host].address)


def start_and_wait(lab: Lab, host: str, user: str, data: str, port: int) -> None:
    lab.sh(host, f"{PG}/pg_ctl -D {data} -l {data}/bench.log -w -t 3600 -o "
                 f"\"-p {port} -c listen_addresses='' -k {data} -c archive_mode=off "
                 f"-c hba_file={data}/pg_hba.conf -c ident_file={data}/pg_ident.conf "
                 f"-c ssl=off -c hot_standby=on -c synchronous_standby_names=''\" start", user)
    lab.sh(host, f"until [ \"$({PG}/psql -XAt -h {data} -p {port} -U postgres -d postgres -c "
                 f"'SELECT pg_is_in_recovery()' 2>/dev/null)\" = f ]; do sleep 0.5; done", user)


def scratch_auth(lab: Lab, host: str, user: str, data: str) -> None:
    lab.sh(host, f"echo 'local all all trust' > {data}/pg_hba.conf && : > {data}/pg_ident.conf "
                 f"&& rm -f {data}/postmaster.pid {data}/standby.signal", user)


def stop_and_remove(lab: Lab, host: str, user: str, data: str) -> None:
    lab.run(host, ["runuser", "-u", user, "--", f"{PG}/pg_ctl", "-D", data, "-m", "immediate",
                   "-w", "stop"], ok=False, timeout=300)
    lab.run(host, ["rm", "-rf", "--one-file-system", data], ok=False, timeout=1800)


def generate(lab: Lab, leader: str, scale: int) -> int:
    lab.sh(leader, f"{PG}/pgbench -i -q -s {scale} -d operational >/dev/null", "postgres")
    lab.sh(leader, "psql -XAtq -d operational -c CHECKPOINT", "postgres")
    return int(lab.sh(leader, "psql -XAt -d operational -c "
                              "\"SELECT pg_database_size('operational')\"", "postgres"))


def backups(lab: Lab, leader: str) -> dict[str, float]:
    out: dict[str, float] = {}
    start = time.monotonic()
    backup.run(lab.site, "full", lab.hosts)
    out["pgbackrest_backup_s"] = time.monotonic() - start
    info = json.loads(lab.sh(lab.repo, "pgbackrest --stanza=main --output=json info",
                             "pgbackrest"))
    newest = info[0]["backup"][-1]
    out["pgbackrest_repo_bytes"] = newest["info"]["repository"]["delta"]
    out["pgbackrest_db_bytes"] = newest["info"]["size"]
    out["pgbackrest_set"] = newest["label"]  # type: ignore[assignment]

    password = (secrets_dir(lab.site.name) / "postgresql_replication").read_text().split()[0]
    conninfo = (f"host={lab.addr(leader)} user=replicator sslmode=verify-full "
                f"sslrootcert={CA}")
    lab.run(lab.repo, ["rm", "-rf", "/var/tmp/bench-basebackup"], ok=False)
    out["basebackup_backup_s"] = lab.timed(lab.repo, (
        f"PGPASSWORD='{password}' {PG}/pg_basebackup -d '{conninfo}' -D /var/tmp/bench-basebackup "
        "-Ft -X fetch --compress=client-gzip -c fast"), backup.REPO_USER)
    out["basebackup_bytes"] = int(lab.sh(lab.repo, "du -sb /var/tmp/bench-basebackup | cut -f1"))

    out["pgdump_backup_s"] = lab.timed(leader, (
        f"{PG}/pg_dump -Fc -d operational -f /var/tmp/bench.dump"), "postgres")
    out["pgdump_bytes"] = int(lab.sh(leader, "stat -c %s /var/tmp/bench.dump"))
    return out


def restores(lab: Lab, leader: str, label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    user = backup.REPO_USER
    data = f"{SCRATCH}-pgbackrest"
    stop_and_remove(lab, lab.repo, user, data)
    start = time.monotonic()
    lab.sh(lab.repo, f"mkdir -m 0700 {data} && pgbackrest --config={backup.DRILL_CONFIG} "
                   f"--stanza=main --pg1-path={data} --set={label} --type=immediate "
                   "--target-action=promote restore", user)
    scratch_auth(lab, lab.repo, user, data)
    start_and_wait(lab, lab.repo, user, data, 5497)
    out["pgbackrest_restore_s"] = time.monotonic() - start
    stop_and_remove(lab, lab.repo, user, data)

    data = f"{SCRATCH}-basebackup"
    stop_and_remove(lab, lab.repo, user, data)
    start = time.monotonic()
    lab.sh(lab.repo, f"mkdir -m 0700 {data} && tar -xzf /var/tmp/bench-basebackup/base.tar.gz "
                   f"-C {data}", user)
    scratch_auth(lab, lab.repo, user, data)
    start_and_wait(lab, lab.repo, user, data, 5496)
    out["basebackup_restore_s"] = time.monotonic() - start
    stop_and_remove(lab, lab.repo, user, data)

    data = "/var/tmp/bench-pgrestore"
    stop_and_remove(lab, leader, "postgres", data)
    start = time.monotonic()
    lab.sh(leader, f"{PG}/initdb -D {data} -A trust -E UTF8 >/dev/null", "postgres")
    start_and_wait(lab, leader, "postgres", data, 5495)
    lab.sh(leader, f"{PG}/createdb -h {data} -p 5495 operational && {PG}/pg_restore -j 2 -O -x "
                   f"-h {data} -p 5495 -d operational /var/tmp/bench.dump", "postgres")
    out["pgdump_restore_s"] = time.monotonic() - start
    stop_and_remove(lab, leader, "postgres", data)
    return out


class Inserts(threading.Thread):
    """One psql connection per insert from app1; records (n, server epoch) of each ack."""

    def __init__(self, lab: Lab, seconds: int) -> None:
        super().__init__(daemon=True)
        self.lab, self.seconds = lab, seconds
        self.acked: list[tuple[int, float]] = []

    def run(self) -> None:
        password = (secrets_dir(self.lab.site.name) / "postgresql_app").read_text().split()[0]
        hosts = ",".join(self.lab.addr(h) for h in self.lab.db)
        dsn = (f"host={hosts} dbname=operational user=app sslmode=verify-full "
               f"sslrootcert={CA} connect_timeout=2 target_session_attrs=read-write")
        script = (f'end=$((SECONDS+{self.seconds})); i=0; while [ $SECONDS -lt $end ]; do '
                  f'i=$((i+1)); psql "{dsn}" -XAtqc "INSERT INTO bench_rpo (n) VALUES ($i) '
                  f'RETURNING \'ack \' || n || \' \' || extract(epoch from at)" 2>/dev/null; '
                  f'sleep 0.1; done')
        done = self.lab.hosts.run(self.lab.app, ["env", f"PGPASSWORD={password}", "bash", "-c",
                                           script], timeout=self.seconds + 300)
        for line in done.stdout.splitlines():
            if line.startswith("ack "):
                _, n, at = line.split()
                self.acked.append((int(n), float(at)))


def rpo(lab: Lab, leader: str, seconds: int) -> dict[str, float]:
    lab.sh(leader, "psql -XAtq -d operational -c \"SET ROLE operational_owner; "
                   "CREATE TABLE IF NOT EXISTS bench_rpo (n int PRIMARY KEY, at timestamptz "
                   "DEFAULT clock_timestamp()); GRANT INSERT, SELECT ON bench_rpo TO app\"",
           "postgres")
    stream = Inserts(lab, seconds + 30)
    stream.start()
    time.sleep(seconds)
    for host in lab.db:  # every database host lost, no warning, mid-stream
        crash(lab.site, host)
    stream.join()
    user, data = backup.REPO_USER, f"{SCRATCH}-rpo"
    stop_and_remove(lab, lab.repo, user, data)
    lab.sh(lab.repo, f"mkdir -m 0700 {data} && pgbackrest --config={backup.DRILL_CONFIG} "
                   f"--stanza=main --pg1-path={data} restore", user)
    scratch_auth(lab, lab.repo, user, data)
    start_and_wait(lab, lab.repo, user, data, 5494)
    got = lab.sh(lab.repo, f"psql -XAt -h {data} -p 5494 -U postgres -d operational -c "
                           "\"SELECT count(*), "
                         "coalesce(extract(epoch from max(at)), 0) FROM bench_rpo\"", user)
    stop_and_remove(lab, lab.repo, user, data)
    restored, newest_restored = got.strip().split("|")
    acked_at = max(at for _, at in stream.acked)
    return {"rpo_acked": len(stream.acked), "rpo_restored": int(restored),
            "rpo_lost": len(stream.acked) - int(restored),
            "rpo_s": max(0.0, acked_at - float(newest_restored))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--site", required=True)
    parser.add_argument("--scale", type=int, default=140)
    parser.add_argument("--rpo-seconds", type=int, default=150)
    parser.add_argument("--skip-rpo", action="store_true")
    args = parser.parse_args()
    site = load_site(args.site)
    lab = Lab(site)
    leader = lab.leader
    result: dict[str, float] = {"scale": args.scale}
    started = time.monotonic()
    result["data_bytes"] = generate(lab, leader, args.scale)
    result["generate_s"] = time.monotonic() - started
    print(json.dumps(result), flush=True)
    made = backups(lab, leader)
    result.update(made)
    print(json.dumps(result), flush=True)
    result.update(restores(lab, leader, str(made["pgbackrest_set"])))
    print(json.dumps(result), flush=True)
    if not args.skip_rpo:
        result.update(rpo(lab, leader, args.rpo_seconds))
    print(json.dumps(result, indent=1))
    gb = result["data_bytes"] / 2**30
    r = result
    print(f"\ndata {gb:.2f} GiB (pgbench scale {args.scale})", file=sys.stderr)
    for tool in ("pgbackrest", "basebackup", "pgdump"):
        size = r.get(f"{tool}_repo_bytes", r.get(f"{tool}_bytes", 0))
        print(f"{tool:11} backup {r[f'{tool}_backup_s']:7.1f} s  restore "
              f"{r[f'{tool}_restore_s']:7.1f} s  size {size / 2**20:8.1f} MiB "
              f"({size / r['data_bytes']:.2f} of the data)", file=sys.stderr)
    print(f"restore ratio pg_dump/pgBackRest "
          f"{r['pgdump_restore_s'] / r['pgbackrest_restore_s']:.2f}x, "
          f"pg_basebackup/pgBackRest {r['basebackup_restore_s'] / r['pgbackrest_restore_s']:.2f}x",
          file=sys.stderr)
    if "rpo_s" in r:
        print(f"RPO (archive only, both db hosts killed): {r['rpo_s']:.1f} s, "
              f"{r['rpo_lost']} of {r['rpo_acked']} acknowledged inserts lost", file=sys.stderr)


if __name__ == "__main__":
    main()
