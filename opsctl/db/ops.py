"""`opsctl db status|switchover|failover`: Patroni's cluster over the site's SSH transport.

Reading: Patroni's REST `/cluster` from the first database host that answers (any member
knows the whole cluster), then one SQL round trip on the leader. Acting: `patronictl` on a
database host, after `cluster.pick_candidate` has judged the request safe; then wait until
the new leader runs and the old one follows it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from opsctl import audit
from opsctl.db.cluster import (
    LEADER_SQL,
    ClusterStatus,
    ClusterUnreadable,
    SwitchRefused,
    merge_leader_facts,
    parse_cluster,
    pick_candidate,
    split_answer,
)
from opsctl.errors import InvalidInput, OpsctlError, Problem
from opsctl.roles import role_default
from opsctl.site.model import Site
from opsctl.transport import HostError, Transport, for_site

# The postgresql and pki roles' layout on the hosts, read from their defaults so that the
# roles and these commands cannot disagree.
PATRONI_CONFIG = role_default("postgresql", "postgresql_patroni_config_dir")
PATRONI_PORT = role_default("postgresql", "postgresql_patroni_port")
# The pki role installs the site CA as ca.crt in pki_dir.
CA_FILE = f"{role_default('pki', 'pki_dir')}/ca.crt"
DB_GROUP = "db"
# Bytes: the bound Patroni itself keeps for promoting a replica automatically.
DEFAULT_MAX_LAG = role_default("postgresql", "postgresql_patroni_maximum_lag_on_failover")

# Runs on a database host: GET Patroni's /cluster and /config with the site CA; prints
# {"cluster": ..., "config": ...} (the dynamic configuration says synchronous_mode, which
# /cluster does not).
_FETCH = (
    "import json,ssl,sys,urllib.request;"
    "c=ssl.create_default_context(cafile=sys.argv[2]);"
    "g=lambda p: json.loads(urllib.request.urlopen(sys.argv[1]+p,context=c,timeout=5).read());"
    "print(json.dumps({'cluster': g('/cluster'), 'config': g('/config')}))"
)


class SwitchFailed(OpsctlError):
    """Patroni did not carry out the switchover or failover in time."""

    exit_code = 1


def db_hosts(site: Site) -> list[str]:
    hosts = [h.name for h in site.hosts_in(DB_GROUP)]
    if not hosts:
        raise InvalidInput([Problem(str(site.inventory_file), "groups",
                                    f"no hosts in group `{DB_GROUP}`")])
    return hosts


def _cluster_json(site: Site, t: Transport) -> tuple[str, str]:
    """(host that answered, Patroni's /cluster body): any member knows the whole cluster."""
    said: list[str] = []
    for host in db_hosts(site):
        url = f"https://{site.hosts[host].address}:{PATRONI_PORT}"
        try:
            done = t.run(host, ["python3", "-c", _FETCH, url, CA_FILE], timeout=20)
        except HostError as exc:
            said.append(str(exc))
            continue
        if done.rc == 0:
            return host, done.stdout
        said.append(f"{host}: Patroni REST API: {done.message}")
    raise ClusterUnreadable("no database host answered: " + "; ".join(said))


def _psql(t: Transport, host: str, sql: str, database: str = "postgres") -> str:
    done = t.run(host, ["runuser", "-u", "postgres", "--", "psql", "-XAtq", "-d", database,
                        "-c", sql], timeout=30)
    if done.rc != 0:
        raise ClusterUnreadable(f"{host}: psql: {done.message}")
    return done.stdout


def status(site: Site, t: Transport | None = None) -> ClusterStatus:
    t = t or for_site(site)
    _, text = _cluster_json(site, t)
    cluster, sync_mode = split_answer(text)
    members, paused = parse_cluster(cluster)
    leader = next((m for m in members if m.is_leader), None)
    expected = tuple(db_hosts(site))
    bare = ClusterStatus(members=members, paused=paused, synchronous_mode=sync_mode,
                         expected=expected)
    if leader is None or not leader.runs:
        return bare
    try:
        facts = _psql(t, leader.name, LEADER_SQL)
    except (HostError, ClusterUnreadable):
        # Patroni still names it leader (its key has not expired): members only.
        return bare
    return replace(merge_leader_facts(members, paused, facts), synchronous_mode=sync_mode,
                   expected=expected)


def leader_name(site: Site, t: Transport) -> str | None:
    """The database host Patroni says leads now, or None when it cannot be asked. After a
    switchover or failover this is not the inventory's db_primary: commands that need the
    read-write member ask here, and fall back to db_primary only when Patroni is silent."""
    if not site.groups.get(DB_GROUP):
        return None
    try:  # Patroni's /cluster alone: the leader's own SQL facts are not needed to name it
        members, _ = parse_cluster(split_answer(_cluster_json(site, t)[1])[0])
    except OpsctlError:
        return None
    return next((m.name for m in members if m.is_leader and m.runs), None)


@dataclass(frozen=True)
class SwitchResult:
    action: str  # switchover | failover
    old_leader: str | None
    new_leader: str
    seconds_to_leader: float  # until the new leader ran read-write (Patroni says leader)
    # until every member ran again, the old leader as replica (None: not waited for, failover)
    seconds_to_healthy: float | None
    status: ClusterStatus

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "old_leader": self.old_leader,
                "new_leader": self.new_leader,
                "seconds_to_leader": round(self.seconds_to_leader, 2),
                "seconds_to_healthy": (None if self.seconds_to_healthy is None
                                       else round(self.seconds_to_healthy, 2)),
                "status": self.status.as_dict()}


def _wait(site: Site, t: Transport, new_leader: str, timeout: float,
          clock: Callable[[], float], sleep: Callable[[float], None],
          started: float, need_healthy: bool) -> tuple[float, float | None, ClusterStatus]:
    """Poll until new_leader leads, then (need_healthy) until the cluster is healthy."""
    at_leader: float | None = None
    last: ClusterStatus | None = None
    while clock() - started < timeout:
        try:
            last = status(site, t)
        except OpsctlError:
            sleep(0.5)
            continue
        leader = last.leader
        if leader is not None and leader.name == new_leader and leader.runs:
            at_leader = at_leader or clock() - started
            if not need_healthy:
                return at_leader, None, last
            if not last.problems():
                return at_leader, clock() - started, last
        sleep(0.5)
    if at_leader is None:
        raise SwitchFailed(f"{new_leader} did not become leader within {timeout:.0f} s")
    # The new leader runs; the old one has not rejoined yet: say so, but the switch happened.
    raise SwitchFailed(f"{new_leader} leads (after {at_leader:.1f} s) but the cluster was not "
                       f"healthy within {timeout:.0f} s: "
                       f"{'; '.join(last.problems()) if last else 'unknown'}")


def check_candidate(site: Site, to: str | None) -> None:
    """`--to` names a database host of the site: checked against the site model, before any
    host is asked (whether it is a running member is Patroni's to say, after)."""
    if to is None:
        return
    site.require_hosts([to], "--to")
    members = db_hosts(site)
    if to not in members:
        raise InvalidInput([Problem("--to", to, f"not a database host of site {site.name} "
                                    f"(database hosts: {', '.join(members)})")])


def _switch(site: Site, action: str, to: str | None, max_lag: int, timeout: float,
            t: Transport | None, clock: Callable[[], float],
            sleep: Callable[[float], None]) -> SwitchResult:
    check_candidate(site, to)
    t = t or for_site(site)
    before = status(site, t)
    try:
        leader, chosen = pick_candidate(before, to, max_lag, need_leader=action == "switchover")
    except ValueError as exc:
        raise InvalidInput([Problem("--to", to or "", str(exc))]) from exc
    except SwitchRefused as exc:
        audit.append(f"db.{action}", {"site": site.name, "to": to}, f"refused: {exc}")
        raise
    argv = ["patronictl", "-c", PATRONI_CONFIG, action, "--candidate", chosen.name, "--force"]
    if action == "switchover" and leader is not None:
        argv[4:4] = ["--leader", leader.name]
    # patronictl on a member that runs (the candidate itself always does).
    started = clock()
    done = t.run(chosen.name, argv, timeout=120)
    if done.rc != 0:
        audit.append(f"db.{action}", {"site": site.name, "to": chosen.name},
                     f"failed: {done.message}")
        raise SwitchFailed(f"patronictl {action}: {done.message}")
    try:
        to_leader, to_healthy, after = _wait(site, t, chosen.name, timeout, clock, sleep, started,
                                            need_healthy=action == "switchover")
    except SwitchFailed as exc:
        audit.append(f"db.{action}", {"site": site.name, "to": chosen.name}, f"failed: {exc}")
        raise
    audit.append(f"db.{action}", {"site": site.name, "to": chosen.name},
                 f"ok: {leader.name if leader else '-'} -> {chosen.name} "
                 f"in {to_leader:.1f} s")
    return SwitchResult(action, leader.name if leader else None, chosen.name, to_leader,
                        to_healthy, after)


def switchover(site: Site, to: str | None = None, max_lag: int = DEFAULT_MAX_LAG,
               timeout: float = 120, t: Transport | None = None,
               clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep) -> SwitchResult:
    """Planned: the leader hands over to a caught-up synchronous replica and follows it."""
    return _switch(site, "switchover", to, max_lag, timeout, t, clock, sleep)


def failover(site: Site, to: str | None = None, max_lag: int = DEFAULT_MAX_LAG,
             timeout: float = 120, t: Transport | None = None,
             clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep) -> SwitchResult:
    """Promote a replica when Patroni cannot decide by itself (no leader, or paused)."""
    return _switch(site, "failover", to, max_lag, timeout, t, clock, sleep)
