"""Prove the flow matrix on a running lab: whitelisted flows connect, nothing else does.

Each probe is a real TCP connection made from inside the source's network namespace.
So that "dropped by a firewall" is not confused with "nothing listens there", every
destination first gets throwaway listeners on the probed ports that have no service.
What is expected comes from the same resolved whitelist the firewalls are built from.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from opsctl.check.probes import Endpoint, Probe, ProbeResult, build_matrix
from opsctl.lab.plan import LabPlan
from opsctl.site.model import Site

__all__ = ["Endpoint", "Probe", "ProbeResult", "matrix", "run_probes"]

# Binds each port on the destination's own address (not the wildcard: on the control
# node that would be the machine's real interfaces), reports which were free.
LISTENER = """
import json, select, socket, sys, time
addr, ports, seconds = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3])
socks = []
for port in ports:
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((addr, port)); s.listen(64); socks.append(s)
    except OSError:
        s.close()
print(json.dumps([s.getsockname()[1] for s in socks]), flush=True)
end = time.monotonic() + seconds
while socks and time.monotonic() < end:
    for s in select.select(socks, [], [], 0.5)[0]:
        s.accept()[0].close()
"""
CONNECTOR = """
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor
targets, timeout = json.loads(sys.argv[1]), float(sys.argv[2])
def one(t):
    try:
        socket.create_connection((t[0], t[1]), timeout=timeout).close(); return "connected"
    except OSError as e:
        return type(e).__name__
with ThreadPoolExecutor(64) as pool:
    print(json.dumps(list(pool.map(one, targets))))
"""


def endpoints(site: Site, plan: LabPlan) -> dict[str, Endpoint]:
    result = {n.name: Endpoint(n.name, n.netns, n.address.split("/")[0]) for n in plan.nodes}
    result["control"] = Endpoint("control", None, str(site.control_address))
    return result


def matrix(site: Site, plan: LabPlan, sources: list[str] | None = None) -> list[Probe]:
    """Every source × every host and the control node × every port the whitelist names.

    By default the sources are the control node, each client (public) and every host.
    """
    eps = endpoints(site, plan)
    # a retired host (still in the lab, no longer in the site) is none of the site's flows
    nodes = [n for n in plan.nodes if n.name in site.hosts or not n.container]
    names = sources or ["control", *[n.name for n in nodes]]
    dests = [eps[n.name] for n in nodes if n.container] + [eps["control"]]
    return build_matrix(site, [eps[n] for n in names], dests)


def _in(netns: str | None, cmd: list[str]) -> list[str]:
    return ["ip", "netns", "exec", netns, *cmd] if netns else cmd


def run_probes(probes: list[Probe], timeout: float = 1.5) -> list[ProbeResult]:
    by_dst: dict[Endpoint, set[int]] = {}
    for p in probes:
        by_dst.setdefault(p.destination, set()).add(p.port)
    by_src: dict[Endpoint, list[Probe]] = {}
    for p in probes:
        by_src.setdefault(p.source, []).append(p)

    listeners: list[subprocess.Popen] = []
    try:
        for dst, ports in by_dst.items():
            cmd = _in(dst.netns, [sys.executable, "-c", LISTENER, dst.address,
                                  json.dumps(sorted(ports)), "300"])
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
            listeners.append(proc)
            if proc.stdout:
                proc.stdout.readline()  # wait until its sockets listen

        def from_source(item: tuple[Endpoint, list[Probe]]) -> list[ProbeResult]:
            src, mine = item
            targets = json.dumps([[p.destination.address, p.port] for p in mine])
            cmd = _in(src.netns, [sys.executable, "-c", CONNECTOR, targets, str(timeout)])
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 60,
                                 check=True).stdout
            return [ProbeResult(p, o) for p, o in zip(mine, json.loads(out), strict=True)]

        with ThreadPoolExecutor(max_workers=max(1, len(by_src))) as pool:
            results = [r for batch in pool.map(from_source, by_src.items()) for r in batch]
    finally:
        for proc in listeners:  # ours, by the handles we started them with
            proc.terminate()
            proc.wait(timeout=10)
    order = {id(p): i for i, p in enumerate(probes)}
    return sorted(results, key=lambda r: order[id(r.probe)])
