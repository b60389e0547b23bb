"""`opsctl pki rotate`: new host keys and certificates, installed and taken up by every service.

`plan` is pure: from the certificate inventory, which hosts get a new certificate, which
tags of site.yml install it and make each consumer take it (the pki role's files and each
consumer's reload task), and what each service does (reload, restart, nothing). `rotate` is
the edge: reissue on the control node, apply those tags to those hosts (opsctl.apply, with its
run record and audit record), then ask the hosts (pki status) until every file and every
service shows the new certificate or the wait is over.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opsctl import audit
from opsctl.apply import history
from opsctl.apply.events import HostEvent
from opsctl.apply.runner import ApplyRequest, apply
from opsctl.apply.tags import playbook_tags
from opsctl.errors import OpsctlError
from opsctl.paths import project_root
from opsctl.pki.inventory import Use, uses
from opsctl.pki.issue import existing, reissue
from opsctl.pki.status import PkiStatus, Probe, gather, select_hosts, transport_probe
from opsctl.site.model import Site
from opsctl.transport import for_site

PKI_TAG = "pki-files"  # the pki role's tasks that install the CA, certificate and key
PLAYBOOK = "site.yml"
VERIFY_SECONDS = 60.0


@dataclass(frozen=True)
class Step:
    host: str
    service: str
    action: str  # reload | restart | none


@dataclass(frozen=True)
class RotationPlan:
    hosts: tuple[str, ...]
    tags: tuple[str, ...]
    steps: tuple[Step, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"hosts": list(self.hosts), "tags": list(self.tags),
                "steps": [{"host": s.host, "service": s.service, "action": s.action}
                          for s in self.steps]}


def plan(hosts: list[str], host_uses: list[Use]) -> RotationPlan:
    """What rotating `hosts` takes: the pki tag and the reload tags of the services on them."""
    mine = [u for u in host_uses if u.host in hosts and u.kind == "host"]
    tags = {PKI_TAG} | {u.tag for u in mine if u.tag}
    steps = sorted({Step(u.host, u.service, u.reload) for u in mine},
                   key=lambda s: (s.host, s.service))
    return RotationPlan(tuple(sorted(hosts)), tuple(sorted(tags)), tuple(steps))


def settled(status: PkiStatus) -> bool:
    """Every host file and every service shows the issued certificate."""
    return all(
        not h.error and all(f.matches for f in h.files if f.kind == "host")
        and all(p.matches for p in h.presented) for h in status.hosts)


@dataclass
class RotationResult:
    plan: RotationPlan
    run: history.RunRecord
    status: PkiStatus | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.run.result == "ok" and self.status is not None and not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"plan": self.plan.as_dict(), "run": self.run.id, "apply": self.run.result,
                "status": self.status.as_dict() if self.status else None,
                "problems": self.problems, "ok": self.ok}


def verify(site: Site, hosts: list[str], probe: Probe, seconds: float = VERIFY_SECONDS,
           sleep: Callable[[float], None] = time.sleep,
           until: Callable[[PkiStatus], bool] = settled) -> PkiStatus:
    """pki status of `hosts` until it settles (a restarted service takes a moment to listen)
    or `seconds` pass; the last answer."""
    deadline = time.monotonic() + seconds
    while True:
        current = gather(site, hosts, probe)
        if until(current) or time.monotonic() >= deadline:
            return current
        sleep(2.0)


def check_tags(tags: tuple[str, ...]) -> None:
    """Every tag a rotation applies is carried by site.yml (before anything is reissued)."""
    known = playbook_tags(project_root() / "playbooks" / PLAYBOOK, project_root() / "roles")
    missing = [t for t in tags if known is not None and t not in known]
    if missing:
        raise OpsctlError(f"{PLAYBOOK} carries no tag {', '.join(missing)}: a consumer of the "
                          "certificate lost its reload task (opsctl/pki/inventory.py)")


def rotate(site: Site, limit: tuple[str, ...] = (), via: str | None = None,
           on_event: Callable[[HostEvent], None] = lambda _e: None,
           probe: Probe | None = None, verify_seconds: float = VERIFY_SECONDS
           ) -> RotationResult:
    """Reissue the certificates of `limit`'s hosts (all without it), apply what installs
    them and makes their services take them up, and check that they do. Bad input stops
    before anything is reissued; an apply that cannot start leaves the new certificates on
    the control node for the next apply (whose consumers' reload tasks take them up). The
    CA itself is rolled over by opsctl/pki/rollover.py (`--ca`)."""
    hosts = select_hosts(site, limit)
    existing(site)
    chosen = plan(hosts, uses(site, hosts))
    check_tags(chosen.tags)  # before anything is reissued
    reissue(site, list(chosen.hosts))
    args = {"site": site.name, "hosts": list(chosen.hosts), "tags": list(chosen.tags)}
    try:
        run = apply(site, ApplyRequest(playbook=PLAYBOOK, limit=chosen.hosts,
                                       tags=chosen.tags, via=via), on_event=on_event)
    except OpsctlError as exc:
        audit.append("pki rotate", args, f"reissued, not installed: {exc}")
        raise
    result = RotationResult(chosen, run)
    if run.result == "ok":
        result.status = verify(site, list(chosen.hosts),
                               probe or transport_probe(for_site(site, via)), verify_seconds)
        result.problems = result.status.problems
    else:
        result.problems = [f"apply run {run.id}: {run.result} ({', '.join(run.failed_hosts)})"]
    audit.append("pki rotate", {**args, "run": run.id},
                 "ok" if result.ok else f"failed: {len(result.problems)} problems")
    return result
