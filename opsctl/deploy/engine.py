"""`opsctl deploy`, `opsctl rollback`, `opsctl releases`: rolling, one batch at a time.

For each batch: drain its hosts at every balancer (backends file, nginx -t, graceful reload,
wait for the old workers — the requests in flight — to finish), switch the release on each
host (push the artifact unless the release is there, unpack, flip `current`, restart), wait
for health on the host itself (the control node may not reach app ports), put them back.
A failed health check switches that batch back to its previous release, puts it back, stops
the deploy (exit 1) and records why. Everything is checked before the first host is touched.

Gathering (SSH) lives here; the decisions are pure functions in plan.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from opsctl import audit
from opsctl.apply import history
from opsctl.deploy.artifacts import component_spec, verify_release
from opsctl.deploy.plan import (
    DependencyState,
    DeployFailed,
    DeployRefused,
    HostRelease,
    Next,
    after_health,
    dependency_problem,
    prunable,
    rollback_target,
    rolling_plan,
)
from opsctl.deploy.steps import health as _health
from opsctl.deploy.steps import remote_program, unanswered
from opsctl.deploy.steps import run as _run
from opsctl.deploy.steps import set_drained as _set_drained
from opsctl.site.model import Site
from opsctl.transport import HostError, Transport, for_site

Progress = Callable[[str], None]
KEEP_RELEASES = 3
DEPENDENCY_HEALTH_TIMEOUT = 5


@dataclass(frozen=True)
class DeployRequest:
    component: str
    version: str
    batch: int = 1
    health_timeout: float | None = None  # the component's health.timeout when None
    action: str = "deploy"  # or "rollback"


@dataclass
class DeployResult:
    record: history.RunRecord
    steps: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.record.result == "ok"


# --- talking to hosts ------------------------------------------------------------------------

def probe(transport: Transport, host: str, component: str) -> HostRelease:
    try:
        code, out = _run(transport, host, ["python3", "-c", remote_program("release_probe.py"),
                                           "--base", f"/opt/{component}",
                                           "--unit", f"{component}.service"], timeout=20)
    except HostError as exc:
        raise DeployFailed(f"cannot read the releases of {component}: {exc}") from None
    if code != 0:
        raise DeployFailed(f"{host}: cannot read the releases of {component}: {out}")
    data = json.loads(out.splitlines()[-1])
    return HostRelease(host, data["current"], data["previous"], tuple(data["releases"]),
                       data["active"])


def releases(site: Site, component: str) -> list[HostRelease]:
    """What runs where: each host of the component's group."""
    spec = component_spec(site, component)
    transport = for_site(site)
    hosts = [h.name for h in site.hosts_in(spec.group)]
    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        return list(pool.map(lambda h: probe(transport, h, component), hosts))


def _switch(transport: Transport, host: str, component: str, version: str,
            artifact: Path | None, previous: str = "record") -> None:
    data = artifact.read_bytes() if artifact else b""
    try:
        code, out = _run(transport, host, [
            "sh", "-c", remote_program("switch_release.sh"), "switch_release",
            "--base", f"/opt/{component}", "--unit", f"{component}.service",
            "--version", version, "--owner", "root:root",
            "--artifact", "push" if artifact else "present", "--previous", previous],
            stdin=data, timeout=120)
    except HostError as exc:
        code, out = None, str(exc)
    if code != 0:
        raise DeployFailed(f"{host}: switching {component} to {version} failed: {out}")


def _prune(transport: Transport, host: str, component: str) -> list[str]:
    state = probe(transport, host, component)
    keep = {v for v in (state.current, state.previous) if v}
    doomed = prunable(list(state.releases), keep, KEEP_RELEASES)
    if doomed:
        try:
            _run(transport, host,
                 ["rm", "-rf", "--", *[f"/opt/{component}/releases/{v}" for v in doomed]])
        except HostError as exc:
            raise DeployFailed(f"pruning old releases of {component}: {exc}") from None
    return doomed


def _dependency_states(site: Site, transport: Transport, component: str) -> list[DependencyState]:
    """Each dependency of `component` on each host of its group: installed, healthy."""
    def one(dep: str, host: str) -> DependencyState:
        try:
            state = probe(transport, host, dep)
        except DeployFailed as exc:
            return DependencyState(dep, host, None, False, str(exc))
        if state.current is None:
            return DependencyState(dep, host, None, False)
        ok, detail = _health(site, transport, host, dep, DEPENDENCY_HEALTH_TIMEOUT)
        return DependencyState(dep, host, state.current, ok, detail)

    pairs = [(dep, h.name) for dep in site.spec.components[component].depends_on
             for h in site.hosts_in(site.spec.components[dep].group)]
    if not pairs:
        return []
    with ThreadPoolExecutor(max_workers=len(pairs)) as pool:
        return list(pool.map(lambda p: one(*p), pairs))


# --- the deploy --------------------------------------------------------------------------------

def deploy(site: Site, request: DeployRequest,
           progress: Progress = lambda _m: None) -> DeployResult:
    """Roll COMPONENT to VERSION; the record's result is ok, or failed with the reason."""
    spec = component_spec(site, request.component)
    # A deploy's artifact is checked first of all (a rollback's only when it must be pushed).
    artifact = verify_release(site, request.component, request.version) if (
        request.action == "deploy") else None
    transport = for_site(site)
    hosts = [h.name for h in site.hosts_in(spec.group)]
    before = _preflight(site, transport, request, hosts)
    batches = rolling_plan(hosts, {h: r.current for h, r in before.items()}, request.version,
                           request.batch)
    if artifact is None and any(request.version not in before[h].releases
                                for b in batches for h in b):
        artifact = verify_release(site, request.component, request.version)
    timeout = request.health_timeout or spec.health.timeout
    record = _start_record(site, request, timeout, batches, before)
    rollout = _Rollout(site, transport, request, before, artifact, timeout,
                       DeployResult(record), progress)
    reason = rollout.run(batches)
    _finish_record(rollout.result, reason)
    summary = (f"ok: {request.component} {request.version} on "
               f"{', '.join(h for b in batches for h in b)} in {record.seconds}s"
               if not reason else f"failed: {reason}")
    audit.append(request.action, {"site": site.name, "run": record.id,
                                  "component": request.component, "version": request.version,
                                  "batch": request.batch}, summary)
    return rollout.result


def _preflight(site: Site, transport: Transport, request: DeployRequest,
               hosts: list[str]) -> dict[str, HostRelease]:
    """Everything is checked before the first host is touched: every host and balancer
    answers, the dependencies are healthy (for a deploy), the component is installed on every
    host. Returns what each host runs now; raises DeployRefused."""
    lbs = [h.name for h in site.hosts_in("lb")]
    down = unanswered(transport, hosts + lbs)
    if down:
        raise DeployRefused(f"{'; '.join(down)}: bring them back (or take them out of the "
                            f"inventory) before deploying {request.component}; nothing was "
                            "changed")
    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        before = {r.host: r for r in pool.map(lambda h: probe(transport, h, request.component),
                                              hosts)}
    # A new version starts only next to healthy dependencies (like compose's
    # service_healthy); a rollback is a repair and always allowed.
    if request.action == "deploy":
        problem = dependency_problem(request.component,
                                     _dependency_states(site, transport, request.component))
        if problem:
            raise DeployRefused(problem)
    missing = [h for h, r in before.items() if r.current is None]
    if missing:
        raise DeployRefused(f"{request.component} is not installed on {', '.join(missing)}: "
                            f"`opsctl apply --site {site.name}` first; nothing was changed")
    return before


def _start_record(site: Site, request: DeployRequest, timeout: float, batches: list[list[str]],
                  before: dict[str, HostRelease]) -> history.RunRecord:
    """The run record, saved before the first change (the plan and what ran before)."""
    record = history.RunRecord(
        id=history.new_run_id(), site=site.name,
        started=datetime.now(UTC).isoformat(timespec="seconds"),
        request={"action": request.action, "component": request.component,
                 "version": request.version, "batch": request.batch,
                 "health_timeout": timeout, "plan": batches,
                 "before": {h: r.current for h, r in before.items()}},
        engine="ssh")
    history.save(record)
    return record


@dataclass
class _Rollout:
    """One deploy's batches, each drained, switched, health-checked, then restored or rolled
    back; every step lands in result.steps and in progress."""

    site: Site
    transport: Transport
    request: DeployRequest
    before: dict[str, HostRelease]
    artifact: Path | None
    timeout: float
    result: DeployResult
    progress: Progress
    start: float = field(default_factory=time.monotonic)

    @property
    def record(self) -> history.RunRecord:
        return self.result.record

    def step(self, host: str, what: str, ok: bool = True, detail: str = "") -> None:
        self.result.steps.append({"t": round(time.monotonic() - self.start, 2), "host": host,
                                  "step": what, "ok": ok, "detail": detail})
        self.progress(f"{host}: {what}" + (f" ({detail})" if detail else ""))

    def run(self, batches: list[list[str]]) -> str:
        """Every batch in turn until one fails; the reason it failed, "" when none did. The
        balancer gets every host back either way."""
        reason = ""
        try:
            for batch in batches:
                reason = self.batch(batch)
                if reason:
                    break
        except DeployFailed as exc:
            reason = str(exc)
            try:
                self.drain(set())
            except DeployFailed as again:
                reason += f"; and the balancer could not be restored: {again}"
        self.record.seconds = round(time.monotonic() - self.start, 2)
        return reason

    def drain(self, hosts: set[str]) -> None:
        _set_drained(self.site, self.transport, self.request.component, hosts)

    def batch(self, batch: list[str]) -> str:
        """Drain, switch, check health; restore and prune, or roll the batch back."""
        self.drain(set(batch))
        for host in batch:
            self.step(host, "drained")
        self.switch(batch)
        healthy = self.health(batch)
        if after_health(healthy) is Next.ROLL_BACK:
            return self.roll_back(batch, healthy)
        self.drain(set())
        for host in batch:
            self.step(host, "restored to the balancer")
            pruned = _prune(self.transport, host, self.request.component)
            if pruned:
                self.step(host, "pruned", detail=", ".join(pruned))
        return ""

    def switch(self, batch: list[str]) -> None:
        version = self.request.version
        for host in batch:
            push = self.artifact if version not in self.before[host].releases else None
            _switch(self.transport, host, self.request.component, version, push)
            self.step(host, f"switched to {version}")

    def health(self, batch: list[str]) -> dict[str, bool]:
        healthy: dict[str, bool] = {}
        for host in batch:
            healthy[host], detail = _health(self.site, self.transport, host,
                                            self.request.component, self.timeout)
            self.step(host, "healthy" if healthy[host] else "unhealthy", healthy[host], detail)
            self.record.hosts[host] = {"status": "ok" if healthy[host] else "failed",
                                       "from": self.before[host].current,
                                       "to": self.request.version, "detail": detail}
        return healthy

    def roll_back(self, batch: list[str], healthy: dict[str, bool]) -> str:
        """Switch the batch back to what it ran before and restore it: the reason the deploy
        stops (and any host that is unhealthy on its old release as well)."""
        bad = [h for h, ok in healthy.items() if not ok]
        reason = (f"{', '.join(bad)}: {self.request.version} failed its health check "
                  f"within {self.timeout:g}s; rolled back")
        for host in batch:
            old = self.before[host]
            _switch(self.transport, host, self.request.component, old.current or "", None,
                    previous=old.previous or "-")
            ok, detail = _health(self.site, self.transport, host, self.request.component,
                                 self.timeout)
            self.step(host, f"rolled back to {old.current}", ok, detail)
            self.record.hosts[host]["status"] = "failed" if ok else "unreachable"
            self.record.hosts[host]["rolled_back_to"] = old.current
            if not ok:
                reason += f"; {host} is unhealthy on {old.current} as well"
        self.drain(set())
        for host in batch:
            self.step(host, "restored to the balancer")
        return reason


def _finish_record(result: DeployResult, reason: str) -> None:
    """The record's result (ok, or failed naming each host that is not ok) and its steps."""
    record = result.record
    action = record.request["action"]
    record.finished = datetime.now(UTC).isoformat(timespec="seconds")
    record.result = "failed" if reason else "ok"
    record.rc = 1 if reason else 0
    if reason:
        record.failures = [{"host": h, "task": action, "message": reason}
                           for h, t in record.hosts.items() if t.get("status") != "ok"] or [
            {"host": "", "task": action, "message": reason}]
    history.save(record)
    (history.run_dir(record.id) / "steps.json").write_text(json.dumps(result.steps, indent=1))


def rollback(site: Site, component: str, batch: int = 1,
             progress: Progress = lambda _m: None) -> DeployResult:
    """Roll every host back to the previous release (the one before the last deploy)."""
    target = rollback_target(releases(site, component))
    return deploy(site, DeployRequest(component, target, batch, action="rollback"), progress)

