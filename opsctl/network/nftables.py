"""Render nftables rulesets from resolved flow rules."""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address

from opsctl.network.flows import Rule

DROP_LOG_PREFIX = "opsctl-fw-drop "


def _set(items: Iterable[object]) -> str:
    values = [str(i) for i in items]
    return values[0] if len(values) == 1 else "{ " + ", ".join(values) + " }"


def _saddr(rule: Rule) -> str:
    if rule.sources_except and all(n.prefixlen == 0 for n in rule.sources):
        # The internet: anything that is not one of the site's own zones.
        return f"ip saddr != {_set(rule.sources_except)}"
    return f"ip saddr {_set(rule.sources)}"


def rule_line(rule: Rule, verdict: str = "accept") -> str:
    """One nft rule for a flow; the comment carries the flow's name into counters and logs."""
    return (
        f"{_saddr(rule)} ip daddr {_set(rule.destinations)} "
        f"{rule.proto} dport {_set(rule.ports)} counter {verdict} comment \"flow {rule.flow}\""
    )


def boundary_ruleset(rules: list[Rule], table: str = "opsctl_boundary") -> str:
    """The boundary router: forward only whitelisted flows; drop, count and log the rest."""
    lines = [
        f"table inet {table}",
        f"delete table inet {table}",
        f"table inet {table} {{",
        "  chain forward {",
        "    type filter hook forward priority filter; policy drop;",
        "    ct state established,related counter accept",
        "    ct state invalid counter drop",
        "    ip protocol icmp icmp type { echo-request, destination-unreachable, time-exceeded }"
        " counter accept",
    ]
    lines += [f"    {rule_line(r)}" for r in rules]
    lines += [
        f'    counter log prefix "{DROP_LOG_PREFIX}" level info drop comment "not whitelisted"',
        "  }",
        "  chain input {",
        "    type filter hook input priority filter; policy drop;",
        "    ct state established,related accept",
        "    ip protocol icmp counter accept",
        '    counter drop comment "nothing is addressed to the router itself"',
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def control_port_ruleset(rules: list[Rule], control: IPv4Address, port: str = "ctl",
                         table: str = "opsctl_control") -> str:
    """The control node's leg on its zone's bridge (lab only).

    Hosts in the control node's own zone reach it over the bridge, past the boundary's
    forward chain; this bridge-family table holds them to the flows addressed to the
    control node. It matches new TCP connections (SYN without ACK) so that replies to the
    control node's own connections pass without connection tracking on the bridge.
    """
    lines = [
        f"table bridge {table}",
        f"delete table bridge {table}",
        f"table bridge {table} {{",
        "  chain forward {",
        "    type filter hook forward priority filter; policy accept;",
    ]
    for rule in rules:
        if any(control in net for net in rule.destinations):
            lines.append(f'    oifname "{port}" ip saddr {_set(rule.sources)} ip daddr {control} '
                         f'{rule.proto} dport {_set(rule.ports)} counter accept '
                         f'comment "flow {rule.flow}"')
    lines += [
        f'    oifname "{port}" ip daddr {control} tcp flags & (syn | ack) == syn counter drop '
        'comment "not whitelisted"',
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"
