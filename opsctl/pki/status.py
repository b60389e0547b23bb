"""`opsctl pki status`: every certificate the site's hosts hold and present, against what the
control node issued.

Gathering is at the edge (`gather`): one call per host through the site's transport runs
opsctl/remote/pki_probe.py, which reads the certificate files and opens a TLS connection to
each of the host's services from the host itself. Judging is pure (`build`, `problems`):
probe answers and the control node's certificates in, a PkiStatus and its problems out.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from opsctl.errors import InvalidInput, Problem
from opsctl.pki import generations
from opsctl.pki.certs import (
    CertInfo,
    Unreadable,
    all_from_pem,
    common_name,
    from_der,
    from_pem,
    from_pem_file,
    utcnow,
)
from opsctl.pki.generations import Rollover
from opsctl.pki.inventory import Use, uses
from opsctl.pki.issue import CA_ROLL_BEFORE_DAYS, RENEW_BEFORE_DAYS, SitePki, existing, wanted_names
from opsctl.remote import program
from opsctl.roles import role_default
from opsctl.site.model import Site
from opsctl.transport import HostError, Transport, for_site

# A certificate this close to its end is a finding: the same number of days as the renewal
# at apply and the OpsctlCertificateExpiring alert (tests/unit/test_pki_status.py ties them).
WARN_DAYS = RENEW_BEFORE_DAYS
PROBE_TIMEOUT = 5.0


@dataclass
class FileState:
    """A certificate file on a host, the services that read it, and how it compares."""

    path: str
    kind: str  # host | ca
    used_by: list[str]
    issued: CertInfo | None  # what the control node issued for this host (or the CA)
    deployed: CertInfo | None = None
    error: str | None = None  # why the deployed file could not be read
    wanted: tuple[str, ...] = ()  # the names a host certificate must carry (the site's now)
    # a CA file: every CA it holds, and the control node's trust bundle it must equal
    bundle: tuple[CertInfo, ...] = ()
    trusted: tuple[CertInfo, ...] = ()

    @property
    def matches(self) -> bool | None:
        if self.kind == "ca" and self.trusted:
            if not self.bundle:
                return None
            return ({c.fingerprint for c in self.bundle}
                    == {c.fingerprint for c in self.trusted})
        if self.deployed is None or self.issued is None:
            return None
        return self.deployed.fingerprint == self.issued.fingerprint


@dataclass
class Presented:
    """What a service answers a TLS handshake with, from its own host."""

    service: str
    port: int
    issued: CertInfo | None
    cert: CertInfo | None = None
    error: str | None = None

    @property
    def matches(self) -> bool | None:
        if self.cert is None or self.issued is None:
            return None
        return self.cert.fingerprint == self.issued.fingerprint


@dataclass
class HostCertificates:
    name: str
    files: list[FileState] = field(default_factory=list)
    presented: list[Presented] = field(default_factory=list)
    error: str | None = None  # the host could not be asked


@dataclass
class PkiStatus:
    site: str
    ca: CertInfo
    hosts: list[HostCertificates]
    now: datetime
    warn_days: int = WARN_DAYS
    trust: tuple[CertInfo, ...] = ()  # the CAs the hosts must trust (the signing CA alone
    # outside a rollover)
    rollover: Rollover = field(default_factory=Rollover)

    @property
    def problems(self) -> list[str]:
        return problems(self)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        def cert(info: CertInfo | None) -> dict | None:
            return info.as_dict(self.now) if info else None

        def issuer(info: CertInfo | None) -> str | None:
            return common_name(info.issuer) if info else None

        return {
            "site": self.site, "now": self.now.isoformat(), "warn_days": self.warn_days,
            "ca": cert(self.ca),
            "trust": [cert(c) for c in self.trust],
            "rollover": {"phase": self.rollover.phase, "generation": self.rollover.generation,
                         "stands": generations.describe(self.rollover),
                         "next": generations.next_command(self.rollover)},
            "hosts": [{
                "name": h.name, "error": h.error,
                "files": [{"path": f.path, "kind": f.kind, "used_by": f.used_by,
                           "issued": cert(f.issued), "deployed": cert(f.deployed),
                           "error": f.error, "matches": f.matches,
                           "wanted_names": list(f.wanted),
                           "signed_by": issuer(f.deployed) if f.kind == "host" else None,
                           "trusts": [common_name(c.subject) for c in f.bundle]}
                          for f in h.files],
                "presented": [{"service": p.service, "port": p.port, "cert": cert(p.cert),
                               "signed_by": issuer(p.cert), "error": p.error,
                               "matches": p.matches} for p in h.presented],
            } for h in self.hosts],
            "problems": self.problems, "healthy": self.healthy,
        }


def _expiry(where: str, info: CertInfo, now: datetime, warn_days: int) -> str | None:
    left = info.days_left(now)
    if left <= 0:
        return f"{where}: expired on {info.not_after:%Y-%m-%d}"
    if left < warn_days:
        return f"{where}: expires in {left:.0f} days ({info.not_after:%Y-%m-%d})"
    return None


def problems(status: PkiStatus) -> list[str]:
    """Each finding in one line: expired or near expiry, deployed or presented ≠ issued,
    a trust bundle other than the control node's, unreadable, unreachable."""
    out = []
    ca = _expiry("site CA (control node)", status.ca, status.now, status.warn_days)
    if ca:
        out.append(ca)
    elif (status.ca.days_left(status.now) < CA_ROLL_BEFORE_DAYS
          and not status.rollover.in_progress):
        out.append(f"site CA (control node): ends on {status.ca.not_after:%Y-%m-%d}: roll it "
                   "over with `opsctl pki rotate --ca`")
    for host in status.hosts:
        if host.error:
            out.append(f"{host.name}: not reached: {host.error.removeprefix(host.name + ': ')}")
            continue
        for f in host.files:
            out += _file_problems(f"{host.name}: {f.path}", f, status)
        for p in host.presented:
            where = f"{host.name}: {p.service} (port {p.port})"
            if p.error:
                out.append(f"{where}: no certificate presented: {p.error}")
            elif p.matches is False and p.cert:
                out.append(f"{where}: presents {p.cert.fingerprint[:16]}, not the issued "
                           f"{p.issued.fingerprint[:16] if p.issued else '-'}")
    return out


def _file_problems(where: str, f: FileState, status: PkiStatus) -> list[str]:
    if f.error:
        return [f"{where}: {f.error}"]
    if f.kind == "ca" and f.trusted and f.matches is False:
        return [f"{where}: trusts {ca_names(f.bundle)}, not {ca_names(f.trusted)} as the "
                "control node has it (`opsctl apply`; during a CA rollover "
                f"`{generations.next_command(status.rollover)}`)"]
    if not f.deployed:
        return []
    out = [e for e in (_expiry(where, each, status.now, status.warn_days)
                       for each in f.bundle or (f.deployed,)) if e]
    missing = sorted(set(f.wanted) - set(f.deployed.sans))
    if missing:
        out.append(f"{where}: does not name {', '.join(missing)} (the site changed "
                   "since it was issued: `opsctl apply` or `opsctl pki rotate`)")
    if f.matches is False:
        out.append(f"{where}: not the certificate the control node issued "
                   f"(deployed {f.deployed.fingerprint[:16]}, issued "
                   f"{f.issued.fingerprint[:16] if f.issued else '-'})")
    return out


def ca_names(cas: tuple[CertInfo, ...]) -> str:
    return " + ".join(common_name(c.subject) for c in cas) or "nothing"


def probe_request(site: Site, host: str, host_uses: list[Use]) -> dict[str, Any]:
    """What pki_probe is asked on `host`: its certificate files and its services' ports."""
    files = sorted({u.path for u in host_uses})
    endpoints, seen = [], set()
    for u in host_uses:
        if u.port is not None and u.port not in seen:
            seen.add(u.port)
            endpoints.append({"address": str(site.hosts[host].address), "port": u.port,
                              "starttls": u.starttls, "name": host})
    # services that want a client certificate (etcd, the log receiver) get the host's own
    own = role_default("pki", "pki_dir")
    return {"files": files, "endpoints": endpoints, "timeout": PROBE_TIMEOUT,
            "client_cert": f"{own}/host.crt", "client_key": f"{own}/host.key"}


def _decode(text: str | None) -> tuple[CertInfo | None, str | None]:
    if text is None:
        return None, None
    try:
        return from_pem(text), None
    except Unreadable as exc:
        return None, str(exc)


def _decode_bundle(text: str | None) -> tuple[CertInfo, ...]:
    try:
        return all_from_pem(text) if text else ()
    except Unreadable:
        return ()


def build(site: Site, ca: CertInfo, issued: dict[str, CertInfo | None],
          answers: dict[str, dict | str], host_uses: dict[str, list[Use]],
          now: datetime | None = None, trust: tuple[CertInfo, ...] | None = None,
          rollover: Rollover | None = None) -> PkiStatus:
    """Answers by host (a probe's JSON answer, or why the host could not be asked) and the
    issued certificates by host in, the status out. `trust`: the CAs the hosts must trust
    (the signing CA alone when not given)."""
    trust = trust or (ca,)
    hosts = []
    for name in sorted(host_uses):
        answer, mine = answers.get(name, "not asked"), host_uses[name]
        state = HostCertificates(name)
        hosts.append(state)
        if isinstance(answer, str):
            state.error = answer
            continue
        for path in sorted({u.path for u in mine}):
            these = [u for u in mine if u.path == path]
            kind = these[0].kind
            got = answer.get("files", {}).get(path, {"error": "not read"})
            deployed, error = _decode(got.get("pem"))
            state.files.append(FileState(
                path, kind, sorted({u.service for u in these}),
                issued.get(name) if kind == "host" else ca, deployed,
                error or (f"cannot read: {got['error']}" if "error" in got else None),
                tuple(sorted(wanted_names(site, name))) if kind == "host" else (),
                _decode_bundle(got.get("pem")) if kind == "ca" else (),
                trust if kind == "ca" else ()))
        by_port = {e.get("port"): e for e in answer.get("endpoints", [])}
        for u in (u for u in mine if u.port is not None):
            got = by_port.get(u.port, {"error": "not probed"})
            cert, error = None, got.get("error")
            if not error and got.get("der"):
                try:
                    cert = from_der(base64.b64decode(got["der"]))
                except Unreadable as exc:
                    error = str(exc)
            state.presented.append(Presented(u.service, u.port, issued.get(name), cert,
                                             error or (None if cert else "no certificate")))
    return PkiStatus(site.name, ca, hosts, now or utcnow(), trust=trust,
                     rollover=rollover or Rollover())


def select_hosts(site: Site, limit: tuple[str, ...] | list[str] | None) -> list[str]:
    """The site's hosts, or those `limit` names (hosts or groups); exit 2 for an unknown one,
    asked before any host is reached (Site.select_hosts)."""
    return site.select_hosts(limit)


def _read(path: Path) -> CertInfo | None:
    try:
        return from_pem_file(path)
    except (OSError, Unreadable):
        return None


def issued_certificates(pki: SitePki, hosts: list[str]
                        ) -> tuple[CertInfo, dict[str, CertInfo | None]]:
    ca = _read(pki.ca_cert)
    if ca is None:
        raise InvalidInput([Problem(str(pki.ca_cert), "", "not a readable certificate")])
    return ca, {h: _read(pki.host_cert(h)) for h in hosts}


def trust_bundle(pki: SitePki) -> tuple[CertInfo, ...] | None:
    """The CAs the hosts must trust; None before the first apply wrote the bundle (the
    signing CA alone then)."""
    try:
        return all_from_pem(pki.trust.read_text(encoding="ascii", errors="replace")) or None
    except (OSError, Unreadable):
        return None


Probe = Callable[[str, dict[str, Any]], dict | str]


def transport_probe(t: Transport) -> Probe:
    """Run pki_probe on a host over the transport: its JSON answer, or why not."""
    script = program("pki_probe")

    def run(host: str, request: dict[str, Any]) -> dict | str:
        timeout = PROBE_TIMEOUT * (len(request["endpoints"]) + 2) + 10
        try:
            done = t.run(host, ["python3", "-", json.dumps(request)], stdin=script,
                         timeout=timeout)
        except HostError as exc:
            return str(exc)
        try:
            return json.loads(done.stdout)
        except json.JSONDecodeError:
            return f"the probe failed: {done.message}"

    return run


def gather(site: Site, hosts: list[str], probe: Probe) -> PkiStatus:
    pki = existing(site)
    ca, issued = issued_certificates(pki, hosts)
    host_uses: dict[str, list[Use]] = {h: [] for h in hosts}
    for use in uses(site, hosts):
        host_uses[use.host].append(use)
    requests = {h: probe_request(site, h, host_uses[h]) for h in hosts}
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(hosts)))) as pool:
        answers = dict(zip(hosts, pool.map(lambda h: probe(h, requests[h]), hosts),
                           strict=True))
    return build(site, ca, issued, answers, host_uses, trust=trust_bundle(pki),
                 rollover=generations.load(pki.directory))


def status(site: Site, limit: tuple[str, ...] = (), via: str | None = None,
           transport: Transport | None = None) -> PkiStatus:
    """The site's certificates (or those of the `limit` hosts), read from the hosts."""
    hosts = select_hosts(site, limit)
    existing(site)  # no CA yet: say so before any host is asked
    return gather(site, hosts, transport_probe(transport or for_site(site, via)))
