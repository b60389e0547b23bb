"""The pure part of `opsctl patch`: which hosts in which order, what a site's health means for
starting, and when a host needs a reboot. No hosts, no SSH: opsctl/patch/run.py gathers, these
decide.

The order keeps the platform serving:
1. the component hosts (group of a component behind the balancers), `--batch N` at a time,
   each batch drained at every balancer first and put back after its health checks;
2. hosts no other rule names, one at a time;
3. the database: the replicas one at a time, then a Patroni switchover (a patched replica
   leads), then the old leader;
4. the backup hosts, one at a time, when no backup runs;
5. the monitoring hosts, one at a time, when no alert fires (while they restart nothing
   evaluates alerts, so they come after everything whose failure an alert would show);
6. the balancers, one at a time, last.

A host whose role has nothing to hand over to (the only balancer, the only database host, the
only component host) cannot be patched without an outage: it is left out unless `--limit`
names it by name (a maintenance window), and the plan says so.

The database, backup and monitoring hosts (Patroni's etcd members among them) are always one
at a time whatever `--batch` says: etcd keeps its quorum only while one member is away.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from opsctl.errors import InvalidInput, OpsctlError, Problem
from opsctl.site.model import Site


class PatchRefused(OpsctlError):
    """The site is not fit to be patched now (unhealthy, a backup running); nothing changed."""

    exit_code = 1


class PatchFailed(OpsctlError):
    """A host failed during the patch; it stopped there, the hosts after it are untouched."""

    exit_code = 1


# What kind of host a batch holds, in the order they are patched.
COMPONENT, OTHER, DB_REPLICA, DB_LEADER, BACKUP, MONITORING, BALANCER = (
    "component", "other", "db-replica", "db-leader", "backup", "monitoring", "balancer")
# The site's groups these rules read.
DB_GROUP, BACKUP_GROUP, MONITORING_GROUP, LB_GROUP = "db", "backup", "monitoring", "lb"


@dataclass(frozen=True)
class Batch:
    kind: str
    hosts: tuple[str, ...]
    drain: bool = False  # drained at every balancer before, put back after its health checks
    switchover: bool = False  # Patroni hands the leader over to a replica first
    # what must be quiet right before it starts: "backup" (none running), "alerts" (none firing)
    quiet: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Plan:
    batches: tuple[Batch, ...]
    # (host, why it is left out)
    left_out: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def hosts(self) -> list[str]:
        return [h for b in self.batches for h in b.hosts]

    def as_dict(self) -> dict[str, Any]:
        return {"batches": [b.as_dict() for b in self.batches],
                "left_out": [{"host": h, "why": w} for h, w in self.left_out]}


def component_hosts(site: Site) -> list[str]:
    """Hosts of any component's group (those the balancers send requests to)."""
    groups = {c.group for c in site.spec.components.values()}
    return [h.name for h in site.hosts.values()
            if any(h.name in site.groups.get(g, ()) for g in groups)]


def _kinds(site: Site, leader: str | None) -> dict[str, str]:
    """Each host's kind: the first rule that names it (component, db, backup, monitoring, lb)."""
    apps = set(component_hosts(site))
    kinds: dict[str, str] = {}
    for name in site.hosts:
        if name in apps:
            kinds[name] = COMPONENT
        elif name in site.groups.get(DB_GROUP, ()):
            kinds[name] = DB_LEADER if name == leader else DB_REPLICA
        elif name in site.groups.get(BACKUP_GROUP, ()):
            kinds[name] = BACKUP
        elif name in site.groups.get(MONITORING_GROUP, ()):
            kinds[name] = MONITORING
        elif name in site.groups.get(LB_GROUP, ()):
            kinds[name] = BALANCER
        else:
            kinds[name] = OTHER
    return kinds


def selected(site: Site, limit: Sequence[str]) -> tuple[set[str], set[str]]:
    """(hosts `--limit` selects, hosts it names by name); every host when it is empty."""
    site.require_hosts(limit, "--limit", also=site.groups)
    if not limit:
        return set(site.hosts), set()
    chosen: set[str] = set()
    for name in limit:
        chosen |= set(site.groups[name]) if name in site.groups else {name}
    return chosen, {n for n in limit if n in site.hosts}


def make_plan(site: Site, leader: str | None, limit: Sequence[str] = (),
              batch: int = 1) -> Plan:
    """The ordered batches for the hosts `limit` selects (all when empty). `leader`: the
    database host Patroni says leads (None when unknown: the site's db_primary group)."""
    if batch < 1:
        raise InvalidInput([Problem("--batch", str(batch), "must be at least 1")])
    if leader is None:
        leader = next(iter(sorted(site.groups.get("db_primary", ()))), None)
    kinds = _kinds(site, leader)
    chosen, named = selected(site, limit)
    of = {k: [h for h in site.hosts if kinds[h] == k] for k in set(kinds.values())}
    apps = of.get(COMPONENT, [])
    if batch >= len(apps) > 1:
        raise InvalidInput([Problem("--batch", str(batch), f"would drain all {len(apps)} "
                                    f"component hosts at once; use at most {len(apps) - 1}")])
    left_out: list[tuple[str, str]] = []
    for kind, what in ((COMPONENT, "component host"), (BALANCER, "balancer")):
        sole = of.get(kind, [])
        if len(sole) == 1 and sole[0] in chosen and sole[0] not in named:
            chosen.discard(sole[0])
            left_out.append((sole[0], f"the only {what}: patching it stops the platform; "
                                      f"name it (--limit {sole[0]}) in a maintenance window"))
    db = of.get(DB_REPLICA, []) + of.get(DB_LEADER, [])
    if len(db) == 1 and db[0] in chosen and db[0] not in named:
        chosen.discard(db[0])
        left_out.append((db[0], "the only database host: no replica to switch over to; name "
                                f"it (--limit {db[0]}) in a maintenance window"))
    return Plan(tuple(_batches(of, chosen, batch, len(db) > 1)), tuple(left_out))


def _batches(of: dict[str, list[str]], chosen: set[str], batch: int,
             replicated: bool) -> list[Batch]:
    def pick(kind: str) -> list[str]:
        return [h for h in of.get(kind, []) if h in chosen]

    out: list[Batch] = []
    apps = pick(COMPONENT)
    out += [Batch(COMPONENT, tuple(apps[i:i + batch]), drain=True)
            for i in range(0, len(apps), batch)]
    out += [Batch(OTHER, (h,)) for h in pick(OTHER)]
    out += [Batch(DB_REPLICA, (h,)) for h in pick(DB_REPLICA)]
    out += [Batch(DB_LEADER, (h,), switchover=replicated) for h in pick(DB_LEADER)]
    out += [Batch(BACKUP, (h,), quiet="backup") for h in pick(BACKUP)]
    out += [Batch(MONITORING, (h,), quiet="alerts") for h in pick(MONITORING)]
    out += [Batch(BALANCER, (h,)) for h in pick(BALANCER)]
    return out


# --- starting -------------------------------------------------------------------------------

# The way forward from an alert, where an opsctl command is it (the status names an alert
# "alert NAME firing[ on HOST]").
ALERT_WAY_FORWARD = {
    "OpsctlFileIntegrityChanged": (
        "AIDE found files changed since its baseline: review them with `opsctl aide report` "
        "and accept the expected ones as the new baseline with `opsctl aide accept HOST... "
        "--reason TEXT`"),
}


def ways_forward(reasons: Iterable[str]) -> list[str]:
    """What to run about the alerts among `reasons`, once per alert."""
    reasons = list(reasons)
    return [text for alert, text in ALERT_WAY_FORWARD.items()
            if any(r == f"alert {alert} firing" or r.startswith(f"alert {alert} firing on ")
                   for r in reasons)]


def refusal(status_problems: Iterable[str], cluster_problems: Iterable[str],
            backups_running: Iterable[str]) -> str | None:
    """Why the patch must not start (None: it may): the site's status (an alert firing, a
    member lagging, a failed unit, …), Patroni's cluster, a backup running; and the command
    that deals with an alert, where there is one."""
    reasons = list(status_problems)
    reasons += [f"database cluster: {p}" for p in cluster_problems]
    reasons += [f"a backup is running ({b})" for b in backups_running]
    if not reasons:
        return None
    forward = "".join(f"; {text}" for text in ways_forward(reasons))
    return (f"the site is not healthy: {'; '.join(reasons)}{forward}; repair it (or wait) and "
            "run patch again; nothing was changed")


# --- a host after its upgrade ----------------------------------------------------------------

# Packages whose new version runs only after a reboot: the kernel, the C library every
# process has mapped, systemd itself (PID 1 re-executes, but its libraries and the user
# managers do not).
REBOOT_PACKAGES = re.compile(r"^(linux-image-.*|libc6|libc-bin|systemd|libsystemd0|"
                             r"libsystemd-shared|udev|dbus|dbus-daemon)$")


def reboot_reason(reboot_required: bool, upgraded: Iterable[str]) -> str | None:
    """Why the host must be rebooted after its upgrade, or None."""
    packages = sorted({p.split(":")[0] for p in upgraded if REBOOT_PACKAGES.match(p.split(":")[0])})
    if reboot_required:
        return "/run/reboot-required" + (f" ({', '.join(packages)})" if packages else "")
    if packages:
        return f"upgraded {', '.join(packages)}"
    return None
