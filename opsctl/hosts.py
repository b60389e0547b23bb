"""`opsctl host add` and `opsctl host retire`: a site's hosts.yml grown and shrunk.

Adding is an edit of hosts.yml and then an ordinary `opsctl apply`: every place the site
model reaches (balancer upstreams, both firewalls, Prometheus targets, the scheduler's hosts,
pg_hba, Patroni membership) is written from the inventory, and the playbooks bring a new host
up before the balancer sends it anything (components play before the balancer's).

Retiring goes from the outside in, so that no request fails, no acknowledged row is lost and
nothing alerts: the leadership moves off a retiring database member (Patroni switchover); the
host is drained at every balancer; it leaves hosts.yml and the rest of the site is converged
without it (balancers, firewalls, Prometheus' targets, the agents' expected replicas, pg_hba);
then its platform services are stopped and disabled (a database member leaves Patroni's
cluster, its data stays on disk). Its data and its operating system are left for the operator.

Edge: hosts through the site's transport; what the site says of itself through `Platform`,
which tests replace.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opsctl import audit
from opsctl.apply import history
from opsctl.errors import InvalidInput, OpsctlError, Problem
from opsctl.roles import role_default
from opsctl.site import edit as site_edit
from opsctl.site.model import Site
from opsctl.transport import HostError, Transport, for_site

Progress = Callable[[str], None]

PATRONI_UNIT = "patroni.service"
# What every managed host runs for the platform besides its components: a retired host must
# not run the scheduler's jobs (an extract on a stopped database member) or look scraped.
AGENT_UNITS = ("opsctl-scheduler.service", "opsctl-monitor.service")
MEMBER_GONE_TIMEOUT = 60.0


class RetireFailed(OpsctlError):
    """A step of the retirement failed; what was done so far is said."""


@dataclass(frozen=True)
class RetirePlan:
    hosts: tuple[str, ...]
    drain: dict[str, tuple[str, ...]]  # component -> its retiring hosts, drained first
    units: dict[str, tuple[str, ...]]  # host -> units stopped and disabled, in this order
    db_members: tuple[str, ...]  # retiring members of Patroni's cluster
    hosts_text: str  # hosts.yml without them (judged: the site it makes loads)

    def as_dict(self) -> dict[str, Any]:
        return {"hosts": list(self.hosts), "drain": {c: list(h) for c, h in self.drain.items()},
                "units": {h: list(u) for h, u in self.units.items()},
                "db_members": list(self.db_members)}


def _groups() -> tuple[str, str, str]:
    """(database members, the member a new cluster starts from, etcd's members: a fixed
    three, not grown or shrunk here), as the postgresql role names them."""
    return (role_default("postgresql", "postgresql_db_group"),
            role_default("postgresql", "postgresql_primary_group"),
            role_default("postgresql", "postgresql_etcd_group"))


def _refusals(site: Site, hosts: list[str]) -> list[Problem]:
    _, primary_group, store_group = _groups()
    problems = []
    for name in hosts:
        groups = site.hosts[name].groups
        if store_group in groups:
            problems.append(Problem("HOST", name, f"a member of Patroni's etcd store (group "
                                    f"{store_group}); the store keeps its three members"))
        if primary_group in groups:
            problems.append(Problem("HOST", name, f"the inventory's {primary_group} (the "
                                    "member a new cluster starts from); name another member "
                                    f"{primary_group} in hosts.yml first"))
        if site.mirror.host == name:
            problems.append(Problem("HOST", name, "serves the site's mirror (site.mirror)"))
    for component, spec in site.spec.components.items():
        members = [h.name for h in site.hosts_in(spec.group)]
        if members and not set(members) - set(hosts):
            problems.append(Problem("HOST", ",".join(hosts), f"would leave component "
                                    f"{component} no host (group {spec.group})"))
    return problems


def retire_plan(site: Site, hosts: list[str]) -> RetirePlan:
    """What retiring `hosts` does, judged before any host is asked: InvalidInput (exit 2,
    nothing changed) for an unknown host, a host the site cannot lose, or a hosts.yml the
    site would not load from."""
    site.require_hosts(hosts, "HOST")
    chosen = list(dict.fromkeys(hosts))
    problems = _refusals(site, chosen)
    if problems:
        raise InvalidInput(problems)
    text = site_edit.judge(site, site_edit.remove_hosts(chosen))
    drain: dict[str, tuple[str, ...]] = {}
    for component, spec in site.spec.components.items():
        leaving = tuple(h.name for h in site.hosts_in(spec.group) if h.name in chosen)
        if leaving and site.groups.get("lb"):
            drain[component] = leaving
    db_group = _groups()[0]
    units = {}
    for name in chosen:
        groups = site.hosts[name].groups
        own = [f"{c}.service" for c, spec in site.spec.components.items()
               if spec.group in groups]
        units[name] = (*own, *((PATRONI_UNIT,) if db_group in groups else ()), *AGENT_UNITS)
    members = tuple(h for h in chosen if db_group in site.hosts[h].groups)
    return RetirePlan(tuple(chosen), drain, units, members, text)


@dataclass
class Platform:
    """What the retirement asks of the site besides its hosts (tests hand in fakes)."""

    leader: Callable[[], str | None]
    switchover: Callable[[str], str]  # to this member; returns the new leader
    set_drained: Callable[[str, set[str]], None]  # component, hosts drained
    members: Callable[[], list[str]]  # Patroni's members now
    apply: Callable[[Site], history.RunRecord]  # the site converged as hosts.yml now says

    @classmethod
    def of(cls, site: Site, t: Transport, apply_request: Any,
           on_event: Callable[[Any], None]) -> Platform:
        # Imported here: each pulls in its own command's library.
        from opsctl.apply.runner import apply  # noqa: PLC0415
        from opsctl.db import ops as db_ops  # noqa: PLC0415
        from opsctl.deploy import steps  # noqa: PLC0415

        return cls(
            leader=lambda: db_ops.leader_name(site, t),
            switchover=lambda to: db_ops.switchover(site, to=to, t=t).new_leader,
            set_drained=lambda component, hosts: steps.set_drained(site, t, component, hosts),
            members=lambda: [m.name for m in db_ops.status(site, t).members],
            apply=lambda now: apply(now, apply_request, on_event=on_event),
        )


@dataclass
class RetireResult:
    plan: RetirePlan
    switched_over: tuple[str, str] | None = None  # (old leader, new leader)
    stopped: dict[str, list[str]] = field(default_factory=dict)  # host -> units it had
    record: history.RunRecord | None = None  # the converge of the rest of the site

    @property
    def ok(self) -> bool:
        return self.record is not None and self.record.result == "ok"

    def as_dict(self) -> dict[str, Any]:
        return {**self.plan.as_dict(), "switched_over": list(self.switched_over or ()) or None,
                "stopped": self.stopped, "run": self.record.id if self.record else None,
                "result": self.record.result if self.record else None}


def _stop_units(t: Transport, host: str, units: tuple[str, ...]) -> list[str]:
    """Stop and disable those of `units` the host has; returns them."""
    shown = t.run(host, ["systemctl", "show", "--property=LoadState", "--value", *units],
                  timeout=60)
    states = shown.output.split()
    if shown.rc != 0 or len(states) != len(units):
        raise RetireFailed(f"{host}: could not read its units: {shown.output.strip()}")
    present = [u for u, state in zip(units, states, strict=True) if state == "loaded"]
    if present:
        done = t.run(host, ["systemctl", "disable", "--now", *present], timeout=300)
        if done.rc != 0:
            raise RetireFailed(f"{host}: could not stop {', '.join(present)}: "
                               f"{done.output.strip()}")
    return present


def retire(site: Site, hosts: list[str], apply_request: Any = None,
           progress: Progress = lambda _m: None, on_event: Callable[[Any], None] = lambda _e: None,
           transport: Transport | None = None, platform: Platform | None = None,
           clock: Callable[[], float] = time.monotonic,
           sleep: Callable[[float], None] = time.sleep) -> RetireResult:
    """Retire `hosts` from `site` (see the module's docstring). RetireFailed names the step
    that failed and what was done before it; a failed converge is the result's record."""
    plan = retire_plan(site, hosts)
    t = transport or for_site(site)
    if apply_request is None:
        from opsctl.apply.runner import ApplyRequest  # noqa: PLC0415
        apply_request = ApplyRequest()
    p = platform or Platform.of(site, t, apply_request, on_event)
    for name in plan.hosts:  # every retiring host answers before anything changes
        try:
            t.run(name, ["true"], timeout=60)
        except HostError as exc:
            raise RetireFailed(f"{name} does not answer ({exc}); nothing was changed") from None
    result = RetireResult(plan)
    done: list[str] = []

    def failed(what: str) -> RetireFailed:
        so_far = "; ".join(done) or "nothing was changed"
        audit.append("host.retire", {"site": site.name, "hosts": list(plan.hosts)},
                     f"failed: {what} (done: {so_far})")
        return RetireFailed(f"{what} (done: {so_far})")

    try:
        if plan.db_members and (leader := p.leader()) in plan.db_members:
            to = next(h.name for h in site.hosts_in(_groups()[0]) if h.name not in plan.hosts)
            progress(f"switchover: {leader} -> {to}")
            result.switched_over = (leader, p.switchover(to))
            done.append(f"leader moved {leader} -> {result.switched_over[1]}")
        for component, leaving in plan.drain.items():
            progress(f"drain {', '.join(leaving)} of {component} at the balancers")
            p.set_drained(component, set(leaving))
            done.append(f"{', '.join(leaving)} drained of {component}")
    except (OpsctlError, HostError) as exc:
        raise failed(str(exc)) from None

    # The rest first, while the hosts still run: the balancers, Prometheus' targets and the
    # agents' expected replicas forget them before their services stop, so nothing alerts
    # on a planned change.
    progress("hosts.yml without them; converge the rest of the site")
    result.record = p.apply(site_edit.write(site, plan.hosts_text))
    done.append(f"out of hosts.yml; the rest converged (run {result.record.id}, "
                f"{result.record.result})")
    if not result.ok:
        by_hand = "; ".join(f"{h}: systemctl disable --now {' '.join(units)}"
                            for h, units in plan.units.items())
        raise failed(f"the converge of the rest failed (run {result.record.id}): run "
                     f"`opsctl apply`, then stop their services by hand ({by_hand})")
    # hosts.yml no longer names them: reach them as the site was (its ssh_config again).
    old = transport or for_site(site)
    try:
        for name, units in plan.units.items():
            progress(f"stop and disable on {name}: {', '.join(units)}")
            result.stopped[name] = _stop_units(old, name, units)
            done.append(f"{name}: stopped {', '.join(result.stopped[name]) or 'nothing'}")
        if plan.db_members:
            deadline = clock() + MEMBER_GONE_TIMEOUT
            while set(p.members()) & set(plan.db_members):
                if clock() > deadline:
                    raise RetireFailed(f"Patroni still lists {', '.join(plan.db_members)} "
                                       f"{MEMBER_GONE_TIMEOUT:.0f} s after they stopped")
                sleep(1)
    except (OpsctlError, HostError) as exc:
        raise failed(str(exc)) from None
    audit.append("host.retire", {"site": site.name, "hosts": list(plan.hosts),
                                 "run": result.record.id},
                 f"ok: {', '.join(plan.hosts)} retired, run {result.record.id}")
    return result


def add(site: Site, name: str, address: str, groups: list[str]) -> Site:
    """`name` in hosts.yml at `address`, in its zone's group (from the address) and `groups`;
    InvalidInput (nothing written) when the site would not load. The host joins at the next
    `opsctl apply` (its key pinned first: `opsctl site trust`)."""
    if name in site.hosts:
        raise InvalidInput([Problem("NAME", name, f"already a host of site {site.name}")])
    try:
        zone = site.zone_of(ipaddress.IPv4Address(address))
    except ValueError:
        raise InvalidInput([Problem("--address", address, "not an IPv4 address")]) from None
    if zone is None or not zone.managed:
        raise InvalidInput([Problem("--address", address, "in none of the site's managed "
                                    "zones (" + ", ".join(
                                        f"{z.name} {z.cidr}" for z in site.zones.values()
                                        if z.managed) + ")")])
    unknown = [g for g in groups if g not in site.groups or g in site.zones]
    if unknown:
        raise InvalidInput([Problem("--group", g, "not a function group of the site "
                                    f"({', '.join(sorted(set(site.groups) - set(site.zones)))})")
                            for g in unknown])
    edit = site_edit.add_host(name, address, [zone.name, *dict.fromkeys(groups)])
    return site_edit.edit_hosts(site, edit)
