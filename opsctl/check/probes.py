"""Prove the boundary from the site's own hosts: whitelisted flows connect, nothing else does.

Edge module: `probe_site` reaches hosts through the site's transport; `matrix`,
`probe_argv` and `parse_outcomes` are pure and tested without hosts.

For each source host, ONE remote call runs PROBE_SCRIPT (stdlib only, on stdin to
`python3 -`), which attempts all that host's TCP connects at once with a short timeout and
prints one outcome per target: connected, refused or timeout (or the error's name). No
listener is started on a real site's hosts, so an allowed flow to a port where nothing
listens shows as refused; a forbidden one that is refused still crossed every firewall
(firewalls here drop, they never reset). The source host's own nftables may drop outgoing
connections too: that is part of the enforced state and reported as such.

The unmanaged zones (the internet's users) hold no host of ours to start from: on a lab
their probes come from the lab's client namespace (opsctl.lab.flowcheck), on a real site
they are reported as not probed, with the reason.
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from opsctl.network.flows import allows, boundary_rules
from opsctl.site.model import Site

TIMEOUT = 2.0
# Outcomes that prove a SYN crossed every firewall on the way: a connection, or a reset from
# the destination's own stack (the firewalls drop, they never reset). A forbidden probe that
# was refused is a hole even though nothing listens there today.
REACHED = frozenset({"connected", "refused", "ConnectionRefusedError"})
# Every probe of a source at once (a source has about a hundred on the reference site): the
# forbidden ones each wait the whole timeout, so batching them would multiply it.
THREADS = 256
PROBE_SCRIPT = """
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor
targets, timeout = json.loads(sys.argv[1]), float(sys.argv[2])
def one(t):
    try:
        socket.create_connection((t[0], t[1]), timeout=timeout).close()
        return "connected"
    except ConnectionRefusedError:
        return "refused"
    except (TimeoutError, socket.timeout):
        return "timeout"
    except OSError as e:
        return type(e).__name__
with ThreadPoolExecutor(max(1, min(THREADS, len(targets)))) as pool:
    print(json.dumps(list(pool.map(one, targets))))
""".replace("THREADS", str(THREADS))
PUBLIC_NOT_PROBED = ("no host of the site stands in this unmanaged zone: probe it from outside "
                     "(manual: from an internet address only the whitelisted flows may connect)")
CONTROL_NOT_PROBED = ("probes start from the site's hosts; the control node's own reach is "
                      "what the scan's SSH uses")


@dataclass(frozen=True)
class Endpoint:
    """Where a probe starts or lands: a host, the control node, or a lab namespace."""

    name: str
    netns: str | None
    address: str


@dataclass(frozen=True)
class Probe:
    source: Endpoint
    destination: Endpoint
    port: int
    expect_open: bool
    flow: str | None  # the whitelisted flow that allows it


@dataclass(frozen=True)
class ProbeResult:
    probe: Probe
    outcome: str  # "connected" or what the connection met (refused, timeout, an error name)

    @property
    def connected(self) -> bool:
        return self.outcome == "connected"

    @property
    def ok(self) -> bool:
        if self.probe.expect_open:
            return self.connected
        return self.outcome not in REACHED

    def as_dict(self) -> dict[str, Any]:
        p = self.probe
        return {"from": p.source.name, "to": p.destination.name, "address": p.destination.address,
                "port": p.port, "expect": "open" if p.expect_open else "closed",
                "flow": p.flow, "outcome": self.outcome, "ok": self.ok}


@dataclass
class ProbeRun:
    """What the probes found, and which sources could not be probed and why."""

    results: list[ProbeResult] = field(default_factory=list)
    not_probed: dict[str, str] = field(default_factory=dict)

    def as_dicts(self) -> list[dict[str, Any]]:
        return [r.as_dict() for r in self.results]

    def summary(self) -> dict[str, Any]:
        """For the scan document: how many probes, the unexpected ones, what was not probed."""
        return {"count": len(self.results),
                "unexpected": [r.as_dict() for r in self.results if not r.ok],
                "not_probed": dict(self.not_probed)}


def probe_ports(site: Site) -> list[int]:
    # TCP only: a connect either completes or is refused/dropped; UDP (the time flow) has no
    # handshake to tell a dropped datagram from an unanswered one.
    return sorted({p for f in site.flows if f.proto == "tcp" for p in f.ports})


def site_endpoints(site: Site) -> dict[str, Endpoint]:
    """Every host of the site and the control node, at their addresses."""
    eps = {h.name: Endpoint(h.name, None, str(h.address)) for h in site.hosts.values()}
    eps["control"] = Endpoint("control", None, str(site.control_address))
    return eps


def build_matrix(site: Site, sources: list[Endpoint], destinations: list[Endpoint]) -> list[Probe]:
    """Every source × every destination × every whitelisted TCP port, with what the
    whitelist expects of it (the same resolved rules the firewalls are built from)."""
    rules = boundary_rules(site)
    ports = probe_ports(site)
    probes = []
    for src in sources:
        for dst in destinations:
            if dst.name == src.name:
                continue
            for port in ports:
                flow = allows(rules, ipaddress.IPv4Address(src.address),
                              ipaddress.IPv4Address(dst.address), "tcp", port)
                probes.append(Probe(src, dst, port, flow is not None, flow))
    return probes


def matrix(site: Site) -> list[Probe]:
    """From every host of the site, to every other host and the control node."""
    eps = site_endpoints(site)
    hosts = [eps[h] for h in site.hosts]
    return build_matrix(site, hosts, [*hosts, eps["control"]])


def probe_argv(probes: list[Probe], timeout: float = TIMEOUT) -> list[str]:
    """The remote command for one source's probes; the script itself travels on stdin."""
    targets = [[p.destination.address, p.port] for p in probes]
    return ["python3", "-", json.dumps(targets, separators=(",", ":")), str(timeout)]


class ProbeOutputError(ValueError):
    """The probe script's output was not one outcome per target."""


def parse_outcomes(probes: list[Probe], rc: int, stdout: str, stderr: str) -> list[ProbeResult]:
    """The probe script's output, one outcome per probe in order (pure)."""
    if rc != 0:
        last = (stderr.strip().splitlines() or [f"exit {rc}"])[-1]
        raise ProbeOutputError(f"probe script failed (exit {rc}): {last}")
    lines = stdout.strip().splitlines()
    try:
        outcomes = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        outcomes = None
    if not isinstance(outcomes, list) or len(outcomes) != len(probes) \
            or not all(isinstance(o, str) for o in outcomes):
        raise ProbeOutputError(f"probe script printed no list of {len(probes)} outcomes")
    return [ProbeResult(p, o) for p, o in zip(probes, outcomes, strict=True)]


# Probes from the unmanaged zones, where a lab has a namespace to start them (or None).
PublicProber = Callable[[Site], list[ProbeResult] | None]


def probe_site(site: Site, transport: Any | None = None,
               public: PublicProber | None = None, timeout: float = TIMEOUT) -> ProbeRun:
    """Run the matrix from every host through the site's transport; hosts in parallel.

    `transport` has `run(host, argv, stdin=, timeout=) -> Result(rc, stdout, stderr)` and
    raises HostError when the host cannot be asked (opsctl.transport.for_site by default).
    """
    from opsctl.transport import HostError, for_site  # noqa: PLC0415

    hosts = transport or for_site(site)
    by_source: dict[str, list[Probe]] = {}
    for p in matrix(site):
        by_source.setdefault(p.source.name, []).append(p)
    # A batch runs THREADS connects at a time, each bounded by the timeout, plus SSH itself.
    budget = timeout * math.ceil(max(len(v) for v in by_source.values()) / THREADS) + 60 \
        if by_source else 60

    def from_source(item: tuple[str, list[Probe]]) -> tuple[str, list[ProbeResult] | str]:
        source, mine = item
        try:
            done = hosts.run(source, probe_argv(mine, timeout), stdin=PROBE_SCRIPT,
                             timeout=budget)
            return source, parse_outcomes(mine, done.rc, done.stdout, done.stderr)
        except HostError as exc:  # unreachable, a changed host key, sudo refused
            return source, str(exc)
        except ProbeOutputError as exc:
            return source, str(exc)

    run = ProbeRun()
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(by_source)))) as pool:
        for source, got in pool.map(from_source, by_source.items()):
            if isinstance(got, str):
                run.not_probed[source] = got
            else:
                run.results += got
    run.not_probed["control"] = CONTROL_NOT_PROBED
    unmanaged = [z.name for z in site.zones.values() if not z.managed]
    from_public = public(site) if public and unmanaged else None
    if from_public is None:
        run.not_probed.update({z: PUBLIC_NOT_PROBED for z in unmanaged})
    else:
        run.results += from_public
    return run
