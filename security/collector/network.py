"""The network as this host exposes it: listening sockets (from /proc/net) and the nftables
ruleset's base chains and policies."""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct

from security.collector.base import FactError, read_opt, run

TCP_LISTEN = "0A"  # /proc/net/tcp's st for LISTEN
UDP_UNCONNECTED = "07"  # /proc/net/udp's st for a bound, unconnected socket
HIGH_RISK_PORTS = {21, 23, 69, 111, 135, 137, 139, 445, 512, 513, 514, 2049, 3389, 5900, 6000}
PROC_NET = ("tcp", "tcp6", "udp", "udp6")


# ---------------------------------------------------------------- listening

def gather_listening() -> dict[str, str | None]:
    if not os.path.exists("/proc/net/tcp"):
        raise FactError("/proc/net/tcp: not available")
    return {name: read_opt(f"/proc/net/{name}") for name in PROC_NET}


def parse_proc_net(text: str | None, listen_state: str | None) -> list[tuple[str, int]]:
    """/proc/net/{tcp,udp}[6] → (address, port) of the sockets in listen_state (None: all)."""
    out: list[tuple[str, int]] = []
    if text is None:
        return out
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) < 4 or (listen_state and f[3] != listen_state):
            continue
        addr_hex, port_hex = f[1].split(":")
        port = int(port_hex, 16)
        if len(addr_hex) == 8:
            addr = socket.inet_ntop(socket.AF_INET, struct.pack("<I", int(addr_hex, 16)))
        else:
            raw = bytes.fromhex(addr_hex)
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
            addr = socket.inet_ntop(socket.AF_INET6, raw)
        out.append((addr, port))
    return out


def is_loopback(addr: str) -> bool:
    return addr.startswith("127.") or addr in ("::1", "::ffff:127.0.0.1") or \
        addr.startswith("::ffff:127.")


def parse_listening(texts: dict[str, str | None]) -> dict:
    tcp = parse_proc_net(texts["tcp"], TCP_LISTEN) + parse_proc_net(texts["tcp6"], TCP_LISTEN)
    udp = parse_proc_net(texts["udp"], UDP_UNCONNECTED) + \
        parse_proc_net(texts["udp6"], UDP_UNCONNECTED)
    return {
        "tcp": sorted({f"{a}:{p}" for a, p in tcp}),
        "tcp_ports": sorted({p for a, p in tcp if not is_loopback(a)}),
        "udp_ports": sorted({p for a, p in udp if not is_loopback(a)}),
        "high_risk_ports": sorted({p for a, p in tcp if not is_loopback(a)} & HIGH_RISK_PORTS),
    }


def fact_listening() -> dict:
    return parse_listening(gather_listening())


# ---------------------------------------------------------------- nftables

def gather_nftables() -> tuple[int, str, str]:
    if shutil.which("nft") is None:
        raise FactError("nft: command not found (nftables is not installed)")
    return run(["nft", "-j", "list", "chains"])


def parse_nftables(done: tuple[int, str, str]) -> dict:
    rc, out, err = done
    if rc != 0:
        raise FactError(f"nft list chains failed: {err.strip()}")
    chains = [c["chain"] for c in json.loads(out).get("nftables", []) if "chain" in c]
    policies = {c["hook"]: c.get("policy", "accept") for c in chains if "hook" in c}
    input_policies = sorted({c.get("policy", "accept") for c in chains
                             if c.get("hook") == "input"})
    return {
        "chains": len(chains),
        "input_policy": "drop" if input_policies == ["drop"] else
        (input_policies[0] if input_policies else None),
        "hooks": policies,
    }


def fact_nftables() -> dict:
    return parse_nftables(gather_nftables())
