"""`opsctl patch --check`: per host, what an upgrade from the mirror would bring (package,
version before → after, the CVEs each fixes) and whether the host would be rebooted. Changes
nothing on the hosts but apt's package lists (`apt-get update`, from the site's mirror).

Edge: the commands run through the site's transport, all hosts at once; the meaning is
opsctl/patch/apt.py's and plan.py's (pure).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from opsctl import audit
from opsctl.db import ops as db_ops
from opsctl.errors import OpsctlError
from opsctl.mirror.build import mirror_dir
from opsctl.mirror.secdata import judge
from opsctl.patch import apt
from opsctl.patch.plan import Plan, make_plan, reboot_reason
from opsctl.site.model import Site
from opsctl.transport import HostError, Transport, for_site
from security.debsec import Cve, SecurityData, SecurityJudge

UPDATE_TIMEOUT = 300


@dataclass
class HostCheck:
    host: str
    changes: list[apt.Change] = field(default_factory=list)
    removals: list[str] = field(default_factory=list)
    kept_back: list[str] = field(default_factory=list)
    fixes: dict[str, tuple[Cve, ...]] = field(default_factory=dict)  # package → CVEs
    reboot: str | None = None  # why the patch would reboot it
    error: str | None = None  # it could not be checked

    @property
    def pending(self) -> bool:
        return bool(self.changes or self.removals or self.reboot)

    def as_dict(self) -> dict[str, Any]:
        return {"host": self.host, "error": self.error, "reboot": self.reboot,
                "removals": self.removals, "kept_back": self.kept_back,
                "changes": [{**c.as_dict(), "cves": [cve for cve, _ in
                                                     self.fixes.get(c.package, ())]}
                            for c in self.changes]}


@dataclass
class CheckReport:
    site: str
    plan: Plan
    hosts: list[HostCheck]
    security_data: str  # what the CVEs were judged with

    @property
    def ok(self) -> bool:
        """Every host answered (pending upgrades are not a failure: they are the answer)."""
        return not any(h.error for h in self.hosts)

    def as_dict(self) -> dict[str, Any]:
        return {"site": self.site, "ok": self.ok, "security_data": self.security_data,
                "plan": self.plan.as_dict(), "hosts": [h.as_dict() for h in self.hosts]}


def _run(t: Transport, host: str, argv: list[str], what: str, timeout: float) -> str:
    try:
        done = t.run(host, argv, timeout=timeout)
    except HostError as exc:
        raise OpsctlError(str(exc)) from None
    if done.rc != 0:
        raise OpsctlError(f"{host}: {what} exited {done.rc}: {done.message}")
    return done.stdout


def refresh_and_simulate(t: Transport, host: str) -> tuple[apt.Simulation,
                                                           dict[str, apt.Installed]]:
    """The package lists refreshed from the mirror, then the simulated upgrade and what is
    installed (for the sources the CVEs are tracked by). Raises OpsctlError naming the host."""
    _run(t, host, apt.UPDATE, "apt-get update", UPDATE_TIMEOUT)
    sim = apt.parse_simulation(_run(t, host, apt.SIMULATE, "apt-get -s dist-upgrade", 120))
    installed = apt.parse_installed(_run(t, host, apt.INSTALLED, "dpkg-query", 60))
    return sim, installed


def reboot_required(t: Transport, host: str) -> bool:
    try:
        return t.run(host, apt.REBOOT_REQUIRED, timeout=20).rc == 0
    except HostError as exc:
        raise OpsctlError(str(exc)) from None


def check_host(t: Transport, host: str, data: SecurityData | None) -> HostCheck:
    result = HostCheck(host)
    try:
        sim, installed = refresh_and_simulate(t, host)
        required = reboot_required(t, host)
    except OpsctlError as exc:
        result.error = str(exc)
        return result
    result.changes, result.removals = list(sim.changes), list(sim.removals)
    result.kept_back = list(sim.kept_back)
    result.fixes = apt.upgrade_fixes(sim, installed, data)
    result.reboot = reboot_reason(required, [c.package for c in sim.changes])
    return result


def security_data() -> tuple[SecurityData | None, str]:
    """The mirror's Debian security data, or None and why there is none."""
    judged = judge(mirror_dir())
    if isinstance(judged, SecurityJudge):
        return judged.data, judged.data.summary()
    return None, "no Debian security data in the mirror (opsctl mirror build --refresh): " \
                 "no CVEs named"


def check(site: Site, limit: tuple[str, ...] = (), batch: int = 1,
          transport: Transport | None = None,
          data: tuple[SecurityData | None, str] | None = None) -> CheckReport:
    """The plan and, for each host in it, what its upgrade would bring."""
    make_plan(site, None, limit, batch)  # bad input is refused before any host is asked
    t = transport or for_site(site)
    plan = make_plan(site, db_ops.leader_name(site, t), limit, batch)
    judged, summary = data if data is not None else security_data()
    hosts = plan.hosts
    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        checks = list(pool.map(lambda h: check_host(t, h, judged), hosts))
    report = CheckReport(site.name, plan, checks, summary)
    # Audited though it upgrades nothing: it refreshed apt's lists on every host it asked.
    failed = [h.host for h in checks if h.error]
    pending = sum(len(h.changes) for h in checks)
    audit.append("patch.check", {"site": site.name, "limit": list(limit), "batch": batch},
                 (f"failed: {', '.join(failed)} could not be checked; " if failed else "ok: ")
                 + f"{pending} upgrades pending on "
                 f"{sum(1 for h in checks if h.pending)} of {len(checks)} hosts")
    return report
