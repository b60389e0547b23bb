"""Namespaces, links, bridges, addresses, routes and the router's nftables for a lab plan.

Every function checks before it makes, so `lab up` run twice changes nothing, and
every removal tolerates what is already gone, so `lab down` finishes a half-made lab.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

from opsctl.errors import LabError
from opsctl.lab.plan import LabPlan, NodePlan
from opsctl.lab.sh import in_netns, run

NETNS_DIR = Path("/run/netns")


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def link_exists(name: str, netns: str | None = None) -> bool:
    cmd = ["ip", "link", "show", "dev", name]
    result = in_netns(netns, cmd, check=False) if netns else run(cmd, check=False)
    return result.returncode == 0


def _addresses(dev: str, netns: str | None) -> set[str]:
    cmd = ["ip", "-j", "addr", "show", "dev", dev]
    out = (in_netns(netns, cmd) if netns else run(cmd)).stdout
    return {f"{a['local']}/{a['prefixlen']}" for link in json.loads(out or "[]")
            for a in link.get("addr_info", []) if a.get("family") == "inet"}


def _ensure_netns(name: str) -> None:
    if not netns_exists(name):
        run(["ip", "netns", "add", name])
    in_netns(name, ["ip", "link", "set", "lo", "up"])


def _ensure_address(dev: str, address: str, netns: str | None = None) -> None:
    if address not in _addresses(dev, netns):
        cmd = ["ip", "addr", "add", address, "dev", dev]
        in_netns(netns, cmd) if netns else run(cmd)


def check_routes_free(plan: LabPlan) -> None:
    """Refuse a lab whose subnets the machine already routes elsewhere (another lab, a real net)."""
    routes = json.loads(run(["ip", "-j", "route", "show"]).stdout or "[]")
    mine = {plan.control_link}
    wanted = [ipaddress.IPv4Network(r) for r in plan.routes]
    wanted.append(ipaddress.IPv4Interface(plan.control_address).network)
    for route in routes:
        dst = route.get("dst")
        if not dst or dst == "default" or route.get("dev") in mine:
            continue
        try:
            net = ipaddress.IPv4Network(dst if "/" in dst else f"{dst}/32", strict=False)
        except ValueError:
            continue
        for w in wanted:
            if net.overlaps(w):
                raise LabError(f"lab {plan.site}: {w} overlaps the machine's route {dst} dev "
                               f"{route.get('dev')}; choose other subnets for this site")


def ensure_router(plan: LabPlan, ruleset: str) -> None:
    ns = plan.router_netns
    _ensure_netns(ns)
    # Forwarding is switched on inside the router's namespace only, never on the machine.
    in_netns(ns, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
    # A zone is a switched segment: traffic inside it never reaches the boundary (only the
    # hosts' own firewalls filter it). br_netfilter, where the machine loaded it, would
    # send bridged frames through the forward chain; keep labs alike on every machine.
    if in_netns(ns, ["test", "-e", "/proc/sys/net/bridge"], check=False).returncode == 0:
        in_netns(ns, ["sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=0",
                      "net.bridge.bridge-nf-call-arptables=0"])
    for bridge in plan.bridges:
        if not link_exists(bridge.name, ns):
            in_netns(ns, ["ip", "link", "add", bridge.name, "type", "bridge"])
        _ensure_address(bridge.name, bridge.router_address, ns)
        in_netns(ns, ["ip", "link", "set", bridge.name, "up"])
    in_netns(ns, ["nft", "-f", "-"], input=ruleset)


def _bridge_of(plan: LabPlan, zone: str) -> str:
    return next(b.name for b in plan.bridges if b.zone == zone)


def ensure_control_link(plan: LabPlan) -> None:
    """The control node's leg: the machine's namespace joins the control zone's bridge."""
    ns = plan.router_netns
    if not link_exists(plan.control_link):
        run(["ip", "link", "add", plan.control_link, "type", "veth", "peer", "name", "ctl",
             "netns", ns])
    in_netns(ns, ["ip", "link", "set", "ctl", "master", _bridge_of(plan, plan.control_zone)])
    in_netns(ns, ["ip", "link", "set", "ctl", "up"])
    _ensure_address(plan.control_link, plan.control_address)
    run(["ip", "link", "set", plan.control_link, "up"])
    existing = json.loads(run(["ip", "-j", "route", "show", "dev", plan.control_link]).stdout
                          or "[]")
    have = {r.get("dst") for r in existing}
    for cidr in plan.routes:
        if cidr not in have:
            run(["ip", "route", "add", cidr, "via", plan.control_gateway,
                 "dev", plan.control_link])


def ensure_node_link(plan: LabPlan, node: NodePlan) -> None:
    ns, router = node.netns, plan.router_netns
    _ensure_netns(ns)
    if not link_exists("eth0", ns):
        in_netns(router, ["ip", "link", "add", node.router_leg, "type", "veth",
                          "peer", "name", "eth0", "netns", ns])
    in_netns(router, ["ip", "link", "set", node.router_leg, "master",
                      _bridge_of(plan, node.zone)])
    in_netns(router, ["ip", "link", "set", node.router_leg, "up"])
    _ensure_address("eth0", node.address, ns)
    in_netns(ns, ["ip", "link", "set", "eth0", "up"])
    in_netns(ns, ["ip", "route", "replace", "default", "via", node.gateway])


def remove_netns(name: str) -> bool:
    if not netns_exists(name):
        return False
    run(["ip", "netns", "del", name])
    return True


def remove_control_link(plan: LabPlan) -> bool:
    # Removing the veth also removes its routes: nothing of the lab stays in the machine's table.
    if link_exists(plan.control_link):
        run(["ip", "link", "del", plan.control_link])
        return True
    return False


def drop_counters(plan: LabPlan) -> dict[str, int]:
    """Packets and bytes the router dropped because no flow named them."""
    out = in_netns(plan.router_netns, ["nft", "-j", "list", "chain", "inet",
                                       "opsctl_boundary", "forward"]).stdout
    for item in json.loads(out).get("nftables", []):
        rule = item.get("rule")
        if rule and rule.get("comment") == "not whitelisted":
            for expr in rule.get("expr", []):
                if "counter" in expr:
                    return {"packets": expr["counter"]["packets"],
                            "bytes": expr["counter"]["bytes"]}
    raise LabError(f"lab {plan.site}: the router has no drop counter")
