"""`opsctl status`'s view: Prometheus's and Alertmanager's answers in, a SiteStatus out.

Pure (tested with recorded answers and no hosts); the queries it needs are QUERIES, which
opsctl.status.fetch runs on the monitoring host.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from opsctl.site.model import Site

QUERIES = {
    "up": 'up{job="opsctl-agent"}',
    "load1": "opsctl_host_load1",
    "memory": "opsctl_host_memory_available_bytes / opsctl_host_memory_total_bytes",
    "filesystems": '1 - opsctl_host_filesystem_avail_bytes{fstype!~"tmpfs|devtmpfs"}'
                   ' / opsctl_host_filesystem_size_bytes',
    # every failed unit on the host (the agent exports all of them, not only its watch list)
    "failed_units": 'opsctl_systemd_unit_state{state="failed"} == 1',
    "system_state": "opsctl_systemd_system_state == 1",
    "disabled_by_design": "opsctl_systemd_unit_disabled_by_design == 1",
    "compliance": "opsctl_compliance_pass_ratio",
    # the database cluster, the backup repository, scheduled jobs
    "pg_up": "opsctl_postgresql_up",
    "pg_recovery": "opsctl_postgresql_in_recovery",
    "pg_streaming": "opsctl_postgresql_replica_streaming",
    "pg_lag_bytes": "opsctl_postgresql_replica_lag_bytes",
    "pg_lag_seconds": "opsctl_postgresql_replica_lag_seconds",
    "backup_age": "time() - max without (type) (opsctl_pgbackrest_backup_last_timestamp_seconds)",
    "backup_policy": "opsctl_pgbackrest_backup_max_age_seconds",
    "backup_count": "opsctl_pgbackrest_backups",
    "job_failures": "opsctl_scheduler_job_consecutive_failures > 0",
}
# The same bounds as the OpsctlReplicationLag alert (monitor/rules/opsctl.rules.yml; tied by
# tests/unit/test_one_source.py).
LAG_SECONDS_MAX = 300.0
LAG_BYTES_MAX = 256 * 1024 * 1024


@dataclass
class DisabledUnit:
    """A unit its role leaves off on purpose (auditd where the kernel refuses audit)."""

    unit: str
    reason: str


@dataclass
class HostStatus:
    name: str
    zone: str
    agent: str = "unknown"  # up | down | unknown (not scraped)
    load1: float | None = None
    memory_available: float | None = None  # share of total
    fullest_mount: str | None = None
    fullest_used: float | None = None  # share of size
    failed_units: list[str] = field(default_factory=list)  # every failed unit, watched or not
    compliance: float | None = None
    # `systemctl is-system-running`: running, degraded, starting, …; None when not known
    system_state: str | None = None
    disabled_by_design: list[DisabledUnit] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        """Agent up, no unit failed, and systemd running (when the agent says; an agent that
        cannot ask systemd leaves it unknown, not unhealthy)."""
        return (self.agent == "up" and not self.failed_units
                and self.system_state in (None, "running"))


@dataclass
class DatabaseServer:
    host: str
    role: str  # primary | replica | down (the agent could not reach it)


@dataclass
class Replica:
    name: str  # the replica's member name (its host name), as the primary expects it
    primary: str
    streaming: bool
    lag_bytes: float | None = None
    lag_seconds: float | None = None

    @property
    def healthy(self) -> bool:
        return self.streaming and (self.lag_seconds or 0) <= LAG_SECONDS_MAX and (
            self.lag_bytes or 0) <= LAG_BYTES_MAX


@dataclass
class BackupState:
    host: str
    stanza: str
    newest_age_seconds: float | None  # None: no backup at all
    max_age_seconds: float | None  # the site's policy (backup.max_age_hours)

    @property
    def healthy(self) -> bool:
        return self.newest_age_seconds is not None and (
            self.max_age_seconds is None or self.newest_age_seconds <= self.max_age_seconds)


@dataclass
class FailingJob:
    host: str
    job: str
    consecutive_failures: int


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
    database: list[DatabaseServer] = field(default_factory=list)
    replicas: list[Replica] = field(default_factory=list)
    backups: list[BackupState] = field(default_factory=list)
    failing_jobs: list[FailingJob] = field(default_factory=list)

    @property
    def database_healthy(self) -> bool:
        return (all(s.role != "down" for s in self.database)
                and all(r.healthy for r in self.replicas))

    @property
    def backups_healthy(self) -> bool:
        return all(b.healthy for b in self.backups)

    @property
    def healthy(self) -> bool:
        return not self.problems()

    def problems(self) -> list[str]:
        """Why the site is not healthy, one line each (none: healthy); what `opsctl patch`
        names when it refuses to start."""
        found = [_host_problem(h) for h in self.hosts if not h.healthy]
        found += [f"alert {a.name} firing" + (f" on {a.host}" if a.host else "")
                  for a in self.alerts]
        found += [f"database on {s.host} is down" for s in self.database if s.role == "down"]
        found += [f"replica {r.name} " + ("not streaming" if not r.streaming else
                                          f"lagging ({r.lag_seconds or 0:g} s, "
                                          f"{r.lag_bytes or 0:g} bytes)")
                  for r in self.replicas if not r.healthy]
        found += [f"backup {b.stanza} on {b.host}: " + (
            "no backup" if b.newest_age_seconds is None else "newest backup too old")
            for b in self.backups if not b.healthy]
        found += [f"job {j.job} on {j.host} failed {j.consecutive_failures} times in a row"
                  for j in self.failing_jobs]
        return found

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for host, out in zip(self.hosts, data["hosts"], strict=True):
            out["healthy"] = host.healthy
        for replica, out in zip(self.replicas, data["replicas"], strict=True):
            out["healthy"] = replica.healthy
        for backup, out in zip(self.backups, data["backups"], strict=True):
            out["healthy"] = backup.healthy
        data["database_healthy"] = self.database_healthy
        data["backups_healthy"] = self.backups_healthy
        data["healthy"] = self.healthy
        return data


def _host_problem(host: HostStatus) -> str:
    if host.agent != "up":
        return f"{host.name}: monitoring agent {host.agent}"
    if host.failed_units:
        return f"{host.name}: failed units {', '.join(host.failed_units)}"
    return f"{host.name}: systemd {host.system_state}"


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
    hosts = [_host(name, site.hosts[name].zone, data) for name in sorted(site.hosts)]
    firing = [
        Alert(a["labels"].get("alertname", "?"), a["labels"].get("host", ""),
              a["labels"].get("severity", ""), a.get("startsAt", ""),
              a.get("annotations", {}).get("summary", ""))
        for a in alerts if a.get("status", {}).get("state", "active") == "active"
    ]
    firing.sort(key=lambda a: (a.severity != "critical", a.name, a.host))
    status = SiteStatus(site.name, prometheus, hosts, firing)
    _platform(status, data)
    return status


def _host(name: str, zone: str, data: dict[str, dict[str, list[tuple[dict, float]]]]
          ) -> HostStatus:
    """One host's line: its agent, resources, systemd (failed units, the manager's state, the
    units left off by design) and compliance."""
    status = HostStatus(name, zone)
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
    if name in data["system_state"]:
        status.system_state = data["system_state"][name][0][0].get("state")
    status.disabled_by_design = sorted(
        (DisabledUnit(m.get("unit", "?"), m.get("reason", ""))
         for m, _ in data["disabled_by_design"].get(name, [])), key=lambda d: d.unit)
    if name in data["compliance"]:
        status.compliance = data["compliance"][name][0][1]
    return status


def _platform(status: SiteStatus, data: dict[str, dict[str, list[tuple[dict, float]]]]) -> None:
    """The database cluster, the backups and the failing jobs, from their agents' metrics."""
    for host in sorted(data["pg_up"]):
        up = data["pg_up"][host][0][1] == 1
        recovery = data["pg_recovery"].get(host)
        role = "down" if not up else (
            "replica" if recovery and recovery[0][1] == 1 else "primary")
        status.database.append(DatabaseServer(host, role))
    for primary in sorted(data["pg_streaming"]):
        lag_bytes = {m.get("replica"): v for m, v in data["pg_lag_bytes"].get(primary, [])}
        lag_seconds = {m.get("replica"): v for m, v in data["pg_lag_seconds"].get(primary, [])}
        for labels, active in sorted(data["pg_streaming"][primary], key=lambda i: str(i[0])):
            name = labels.get("replica", "?")
            status.replicas.append(Replica(name, primary, active == 1, lag_bytes.get(name),
                                           lag_seconds.get(name)))
    ages = {(h, m.get("stanza")): v for h, items in data["backup_age"].items() for m, v in items}
    policy = {(h, m.get("stanza")): v for h, items in data["backup_policy"].items()
              for m, v in items}
    for host in sorted(data["backup_count"]):
        for labels, _count in data["backup_count"][host]:
            key = (host, labels.get("stanza"))
            status.backups.append(BackupState(host, str(key[1]), ages.get(key), policy.get(key)))
    for host in sorted(data["job_failures"]):
        for labels, count in sorted(data["job_failures"][host], key=lambda i: str(i[0])):
            status.failing_jobs.append(FailingJob(host, labels.get("job_name", "?"), int(count)))
