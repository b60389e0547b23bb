"""`opsctl check --site`: one SSH session per host runs the collector; hosts in parallel.

The collector travels on the session's stdin (`python3 -`), so a host needs only Python 3.
Evaluation is local and pure. A host that cannot be reached, or whose collector fails, becomes
a target whose every check is `error` with the reason; the other hosts go on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opsctl.check.exceptions import SiteExceptions, load_site_exceptions
from opsctl.check.netfacts import host_context, network_facts
from opsctl.check.probes import ProbeRun, probe_site
from opsctl.check.scan import Scan, catalog
from opsctl.mirror.build import mirror_dir
from opsctl.mirror.secdata import judge
from opsctl.site.model import Site, load_site
from security.collector.bundle import collector_script
from security.evaluate import (
    TargetResult,
    evaluate_target,
    follow_evidence,
    scan_document,
    unreachable_target,
)
from security.local import (
    COLLECTOR_TIMEOUT,
    CollectorFailed,
    SecurityFacts,
    evaluate_facts,
    parse_collector_output,
)

if TYPE_CHECKING:
    from opsctl.transport import SshTransport


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str
    stderr: str
    # Why the collector did not run at all (unreachable, host key changed, sudo refused).
    not_run: str | None = None


# A transport runs the collector script on a host and hands back what it printed.
Transport = Callable[[str, str], Completed]


def ssh_transport(site: Site, via: str | None = None,
                  hosts: SshTransport | None = None) -> Transport:
    """The collector over the site's transport (its connection: own SSH or the lab's)."""
    from opsctl.transport import HostError, for_site  # noqa: PLC0415

    hosts = hosts or for_site(site, via)

    def run(host: str, script: str) -> Completed:
        try:
            done = hosts.run(host, ["python3", "-"], stdin=script, timeout=COLLECTOR_TIMEOUT)
        except HostError as exc:
            return Completed(255, "", "", not_run=str(exc))
        return Completed(done.rc, done.stdout, done.stderr)

    return run


def _scan_host(site: Site, host: str, transport: Transport, checks: list,
               script: str, security: SecurityFacts) -> TargetResult:
    done = transport(host, script)
    if done.not_run is not None:
        return unreachable_target(host, "host", checks, f"not scanned: {done.not_run}")
    try:
        collected = parse_collector_output(done.returncode, done.stdout, done.stderr)
    except CollectorFailed as exc:
        return unreachable_target(host, "host", checks, str(exc))
    return evaluate_facts(collected, checks, host_context(site, host), name=host,
                          security=security)


def limited_hosts(site: Site, limit: list[str] | None) -> list[str]:
    """The site's hosts, or those `limit` names; InvalidInput for a name the site does not
    have."""
    if not limit:
        return list(site.hosts)
    site.require_hosts(limit, "--limit")
    return [h for h in site.hosts if h in limit]


def scan_site(site: Site, level: int = 3, limit: list[str] | None = None,
              transport: Transport | None = None,
              probes: ProbeRun | None = None, via: str | None = None,
              exceptions: SiteExceptions | None = None,
              security: SecurityFacts | None = None) -> Scan:
    """Every host of the site (or those in `limit`), then the site's network checks.

    Without `probes` the checks of the enforced boundary are errors (not probed). The site's
    documented exceptions (read here, before any host is scanned, unless handed in) apply to
    the results. Hosts' packages are judged by the offline mirror's Debian security data
    (read once, unless handed in: opsctl.mirror.secdata.judge)."""
    exceptions = exceptions if exceptions is not None else load_site_exceptions(site)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    t0 = time.monotonic()
    checks = catalog(level)
    hosts = limited_hosts(site, limit)
    run = transport or ssh_transport(site, via)
    script = collector_script()
    security = security or judge(mirror_dir())
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(hosts)))) as pool:
        targets = list(pool.map(lambda h: _scan_host(site, h, run, checks, script, security),
                                hosts))
    if not limit:
        facts = network_facts(site, probes.as_dicts() if probes else None,
                              probes.not_probed if probes else None)
        targets.append(evaluate_target(site.name, "network", checks, facts))
    # a database's backup evidence follows its backup host, exceptions included
    targets = follow_evidence(exceptions.apply(targets))
    doc = scan_document(targets, level, started, time.monotonic() - t0, len(checks),
                        exceptions.report(targets))
    if probes is not None and not limit:
        doc["probes"] = probes.summary()
    return Scan(targets, level, doc)


def scan_named_site(name: str, level: int = 3, limit: list[str] | None = None,
                    probe: bool = True, via: str | None = None) -> Scan:
    """Load a site and scan it. A whole-site scan probes the flow matrix from the site's hosts
    (opsctl.check.probes) unless `probe` is false; the network checks of the enforced
    boundary rest on those probes. One transport serves both (one sudo password prompt)."""
    from opsctl.transport import for_site  # noqa: PLC0415

    site = load_site(name)
    limited_hosts(site, limit)  # an unknown host, too, stops before the site is reached
    exceptions = load_site_exceptions(site)  # a broken file stops before anything is probed
    hosts = for_site(site, via)
    probes = site_probes(site, hosts) if probe and not limit else None
    return scan_site(site, level, limit, transport=ssh_transport(site, hosts=hosts),
                     probes=probes, exceptions=exceptions)


def site_probes(site: Site, hosts: SshTransport) -> ProbeRun:
    """The flow matrix from the site's hosts over its transport; the unmanaged zones from the
    lab's client namespaces only when the site is reached as a lab (a real site has no host
    of ours on the internet: those probes are reported as not run)."""
    public = None
    if hosts.conn.via == "lab":
        from opsctl.lab.lifecycle import public_probes  # noqa: PLC0415

        public = public_probes
    return probe_site(site, hosts, public=public)
