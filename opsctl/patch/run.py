"""`opsctl patch`: the hosts upgraded from the mirror one batch at a time, in plan.py's order.

It starts only on a healthy site (status from the monitoring host, Patroni's cluster, no
backup running) and with every host answering. Per batch: wait until what must be quiet is
(no backup running before a backup host, no alert firing before a monitoring host), hand the
database leader over (Patroni switchover) before patching it, drain component hosts at every
balancer; per host: simulate (refused when it would remove a package), upgrade, reboot when
needed and wait for the host to come back, wait until it is healthy (systemd running, its
components' health checks, the database cluster healthy); put the batch back. The first host
that fails stops the patch: the hosts after it are untouched, the run record and the audit
log say which host and why, exit 1.

Edge: hosts through the site's transport; what the site says of itself through `Platform`,
which tests replace.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from opsctl import audit
from opsctl.apply import history
from opsctl.errors import InvalidInput, OpsctlError, Problem
from opsctl.patch import apt
from opsctl.patch.check import reboot_required
from opsctl.patch.plan import (
    BACKUP_GROUP,
    COMPONENT,
    DB_LEADER,
    DB_REPLICA,
    Batch,
    PatchFailed,
    PatchRefused,
    Plan,
    make_plan,
    reboot_reason,
    refusal,
    ways_forward,
)
from opsctl.site.model import Site
from opsctl.transport import HostError, Transport, for_site

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PatchRequest:
    limit: tuple[str, ...] = ()
    batch: int = 1
    reboot_timeout: float = 900  # seconds a rebooted host has to answer again
    health_timeout: float = 180  # seconds a host has to be healthy after its upgrade
    quiet_timeout: float = 1800  # seconds to wait for a running backup to finish


@dataclass
class Platform:
    """What the patch asks of the site besides apt on its hosts (tests hand in fakes)."""

    problems: Callable[[], list[str]]  # the site's status: why it is not healthy
    cluster_problems: Callable[[], list[str]]  # Patroni's cluster: why it is not healthy
    leader: Callable[[], str | None]
    backups_running: Callable[[], list[str]]
    switchover: Callable[[], str]  # the new leader
    set_drained: Callable[[str, set[str]], None]  # component, hosts drained
    component_health: Callable[[str, str], tuple[bool, str]]  # host, component

    @classmethod
    def of(cls, site: Site, t: Transport) -> Platform:
        # Imported here: each pulls in its own command's library.
        from opsctl.backup import ops as backup_ops  # noqa: PLC0415
        from opsctl.db import ops as db_ops  # noqa: PLC0415
        from opsctl.deploy import steps  # noqa: PLC0415
        from opsctl.status.fetch import fetch  # noqa: PLC0415

        has_db = bool(site.groups.get(db_ops.DB_GROUP))

        def running() -> list[str]:
            if not site.groups.get(BACKUP_GROUP):
                return []
            stanza = backup_ops.read_stanza(site, t)
            return [f"stanza {stanza.name} on {backup_ops.hosts(site).repo}"] if (
                stanza.backup_running) else []

        return cls(
            problems=lambda: fetch(site, transport=t).problems(),
            cluster_problems=lambda: db_ops.status(site, t).problems() if has_db else [],
            leader=lambda: db_ops.leader_name(site, t),
            backups_running=running,
            switchover=lambda: db_ops.switchover(site, t=t).new_leader,
            set_drained=lambda component, hosts: steps.set_drained(site, t, component, hosts),
            component_health=lambda host, component: steps.health(
                site, t, host, component, site.spec.components[component].health.timeout))


@dataclass
class PatchResult:
    record: history.RunRecord
    plan: Plan
    steps: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.record.result == "ok"

    def as_dict(self) -> dict[str, Any]:
        return {**self.record.as_dict(), "steps": self.steps}


def patch(site: Site, request: PatchRequest, progress: Progress = lambda _m: None,
          transport: Transport | None = None, platform: Platform | None = None,
          clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], None] = time.sleep) -> PatchResult:
    """Patch the hosts `request.limit` selects (all by default); the record's result is ok,
    or failed naming the host that stopped it. PatchRefused (nothing changed) when the site
    is not healthy or a host does not answer."""
    make_plan(site, None, request.limit, request.batch)  # bad input before any host is asked
    t = transport or for_site(site)
    p = platform or Platform.of(site, t)
    plan = make_plan(site, p.leader(), request.limit, request.batch)
    if not plan.hosts:
        left = "; ".join(f"{h}: {why}" for h, why in plan.left_out) or "none selected"
        raise InvalidInput([Problem("--limit", ",".join(request.limit) or "(all)",
                                    f"no host to patch ({left})")])
    _gate(site, t, p, plan, request)
    record = _start_record(site, request, plan)
    rollout = _Rollout(site, t, p, request, PatchResult(record, plan), progress, clock, sleep)
    reason = rollout.run()
    _finish_record(rollout.result, reason)
    summary = (f"ok: {', '.join(plan.hosts)} in {record.seconds}s" if not reason
               else f"failed: {reason}")
    audit.append("patch", {"site": site.name, "run": record.id, "limit": list(request.limit),
                           "batch": request.batch}, summary)
    return rollout.result


def _gate(site: Site, t: Transport, p: Platform, plan: Plan, request: PatchRequest) -> None:
    """Refuse (PatchRefused, audited, nothing changed) unless every host of the plan and
    every balancer answers and the site is healthy."""
    from opsctl.deploy.steps import unanswered  # noqa: PLC0415

    lbs = [h.name for h in site.hosts_in("lb")]
    down = unanswered(t, list(dict.fromkeys(plan.hosts + lbs)))
    why = None
    if down:
        why = (f"{'; '.join(down)}: bring them back (or leave them out with --limit) "
               "before patching; nothing was changed")
    else:
        try:
            why = refusal(p.problems(), p.cluster_problems(), p.backups_running())
        except OpsctlError as exc:
            why = f"the site's health cannot be read ({exc}); nothing was changed"
    if why:
        audit.append("patch", {"site": site.name, "limit": list(request.limit),
                               "batch": request.batch}, f"refused: {why}")
        raise PatchRefused(why)


def _start_record(site: Site, request: PatchRequest, plan: Plan) -> history.RunRecord:
    record = history.RunRecord(
        id=history.new_run_id(), site=site.name,
        started=datetime.now(UTC).isoformat(timespec="seconds"),
        request={"action": "patch", "limit": list(request.limit), "batch": request.batch,
                 "plan": plan.as_dict()},
        engine="ssh",
        hosts={h: {"status": "untouched"} for h in plan.hosts})
    history.save(record)
    return record


def _finish_record(result: PatchResult, reason: str) -> None:
    record = result.record
    record.finished = datetime.now(UTC).isoformat(timespec="seconds")
    record.result = "failed" if reason else "ok"
    record.rc = 1 if reason else 0
    if reason:
        record.failures = [{"host": h, "task": "patch", "message": reason}
                           for h, t in record.hosts.items() if t.get("status") == "failed"] or [
            {"host": "", "task": "patch", "message": reason}]
    history.save(record)
    (history.run_dir(record.id) / "steps.json").write_text(json.dumps(result.steps, indent=1))


@dataclass
class _Rollout:
    site: Site
    t: Transport
    p: Platform
    request: PatchRequest
    result: PatchResult
    progress: Progress
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    start: float = 0.0

    @property
    def record(self) -> history.RunRecord:
        return self.result.record

    def step(self, host: str, what: str, ok: bool = True, detail: str = "") -> None:
        self.result.steps.append({"t": round(self.clock() - self.start, 2), "host": host,
                                  "step": what, "ok": ok, "detail": detail})
        self.progress(f"{host}: {what}" + (f" ({detail})" if detail else ""))

    def run(self) -> str:
        """Every batch in turn until one fails: the reason it failed, "" when none did."""
        self.start = self.clock()
        reason = ""
        for batch in self.result.plan.batches:
            try:
                self.batch(batch)
            except OpsctlError as exc:
                reason = str(exc)
                break
        self.record.seconds = round(self.clock() - self.start, 2)
        return reason

    # --- one batch -------------------------------------------------------------------------

    def components_of(self, host: str) -> list[str]:
        """The components on `host`, each after those it depends on (health in that order)."""
        return [name for name in self.site.component_order()
                if host in self.site.groups.get(self.site.spec.components[name].group, ())]

    def batch(self, batch: Batch) -> None:
        first = batch.hosts[0]
        if batch.quiet == "backup":
            self.wait_backups(first)
        elif batch.quiet == "alerts":
            firing = [p for p in self.p.problems() if p.startswith("alert ")]
            if firing:
                forward = "".join(f"; {text}" for text in ways_forward(firing))
                raise PatchFailed(f"{first}: not patched while {'; '.join(firing)} (its "
                                  f"evaluation would be cut short){forward}; the hosts after "
                                  "it are untouched")
        if batch.switchover:
            self.step(first, "switchover", detail="Patroni hands the leader over")
            new = self.p.switchover()
            self.step(first, "switched over", detail=f"{new} leads")
        drained = self.drain(batch) if batch.drain else {}
        done: list[str] = []
        try:
            for host in batch.hosts:
                self.host(host, batch.kind)
                done.append(host)
        except OpsctlError:
            # The failed host stays drained (it is not healthy); the others go back.
            failed = batch.hosts[len(done)]
            for component, hosts in drained.items():
                self.p.set_drained(component, hosts & {failed})
            if drained:
                self.step(failed, "left drained at the balancer", False,
                          "`opsctl apply --limit lb` puts it back once repaired")
            raise
        for component in drained:
            self.p.set_drained(component, set())
        for host in batch.hosts if drained else ():
            self.step(host, "restored to the balancer")

    def drain(self, batch: Batch) -> dict[str, set[str]]:
        drained: dict[str, set[str]] = {}
        for host in batch.hosts:
            for component in self.components_of(host):
                drained.setdefault(component, set()).add(host)
        for component, hosts in drained.items():
            self.p.set_drained(component, hosts)
        for host in batch.hosts:
            self.step(host, "drained")
        return drained

    def wait_backups(self, host: str) -> None:
        deadline = self.clock() + self.request.quiet_timeout
        while running := self.p.backups_running():
            if self.clock() >= deadline:
                raise PatchFailed(f"{host}: a backup is still running after "
                                  f"{self.request.quiet_timeout:g}s ({', '.join(running)}); "
                                  "not patched, the hosts after it are untouched")
            self.step(host, "waiting", detail=f"a backup is running ({', '.join(running)})")
            self.sleep(15)

    # --- one host --------------------------------------------------------------------------

    def fail(self, host: str, why: str) -> PatchFailed:
        self.record.hosts[host] = {**self.record.hosts.get(host, {}), "status": "failed",
                                   "detail": why}
        self.step(host, "failed", False, why)
        return PatchFailed(f"{host}: {why}; the hosts after it are untouched")

    def remote(self, host: str, argv: list[str], what: str, timeout: float) -> str:
        try:
            done = self.t.run(host, argv, timeout=timeout)
        except HostError as exc:
            raise self.fail(host, f"{what}: {exc}") from None
        if done.rc != 0:
            raise self.fail(host, f"{what} exited {done.rc}: {done.message}")
        return done.stdout

    def host(self, host: str, kind: str) -> None:
        self.record.hosts[host] = {"status": "running"}
        boot = self.remote(host, apt.BOOT_ID, "reading the boot id", 20).strip()
        self.remote(host, apt.UPDATE, "apt-get update", 300)
        sim = apt.parse_simulation(self.remote(host, apt.SIMULATE, "apt-get -s dist-upgrade",
                                               120))
        if sim.removals:
            raise self.fail(host, f"the upgrade would remove {', '.join(sim.removals)}: not "
                                  "upgraded (resolve it by hand)")
        if sim.changes:
            self.remote(host, apt.UPGRADE, "apt-get dist-upgrade", 1800)
            self.step(host, "upgraded", detail=", ".join(
                f"{c.package} {c.before or '-'} -> {c.after}" for c in sim.changes))
        else:
            self.step(host, "up to date")
        try:
            required = reboot_required(self.t, host)
        except OpsctlError as exc:
            raise self.fail(host, str(exc)) from None
        why = reboot_reason(required, [c.package for c in sim.changes])
        if why:
            self.reboot(host, boot, why)
        self.healthy(host, kind)
        self.record.hosts[host] = {"status": "ok", "upgraded": [c.as_dict() for c in sim.changes],
                                   "kept_back": list(sim.kept_back), "rebooted": why}
        self.step(host, "healthy")

    def reboot(self, host: str, boot: str, why: str) -> None:
        self.step(host, "rebooting", detail=why)
        with contextlib.suppress(HostError):  # the connection may close under it
            self.t.run(host, ["systemctl", "reboot"], timeout=30)
        deadline = self.clock() + self.request.reboot_timeout
        while self.clock() < deadline:
            self.sleep(3)
            try:
                done = self.t.run(host, apt.BOOT_ID, timeout=10)
            except HostError:
                continue
            if done.rc == 0 and done.stdout.strip() and done.stdout.strip() != boot:
                self.step(host, "rebooted")
                return
        raise self.fail(host, f"did not come back from its reboot within "
                              f"{self.request.reboot_timeout:g}s")

    def healthy(self, host: str, kind: str) -> None:
        """systemd running (no failed unit), then what the host's role serves."""
        limit = int(self.request.health_timeout)
        try:
            done = self.t.run(host, ["timeout", str(limit), "systemctl", "is-system-running",
                                     "--wait"], timeout=limit + 30)
        except HostError as exc:
            raise self.fail(host, f"after its upgrade: {exc}") from None
        state = done.stdout.strip() or done.message
        if state != "running":
            listed = self.t.run(host, ["systemctl", "--failed", "--plain", "--no-legend"],
                                timeout=20).stdout
            units = [line.split()[0] for line in listed.splitlines() if line.strip()]
            raise self.fail(host, f"systemd is {state} after the upgrade" +
                            (f" (failed: {', '.join(units)})" if units else ""))
        if kind == COMPONENT:
            for component in self.components_of(host):
                ok, detail = self.p.component_health(host, component)
                if not ok:
                    raise self.fail(host, f"{component} failed its health check ({detail})")
        elif kind in (DB_REPLICA, DB_LEADER):
            self.wait_cluster(host)

    def wait_cluster(self, host: str) -> None:
        deadline = self.clock() + self.request.health_timeout
        problems: list[str] = []
        while self.clock() < deadline:
            try:
                problems = self.p.cluster_problems()
            except OpsctlError as exc:
                problems = [str(exc)]
            if not problems:
                return
            self.sleep(2)
        raise self.fail(host, f"the database cluster was not healthy within "
                              f"{self.request.health_timeout:g}s ({'; '.join(problems)})")
