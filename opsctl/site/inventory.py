"""Our own reader of Ansible's YAML inventory format (hosts, children, vars).

Ansible's `ansible-inventory --list` would also do, but it loses where a value came
from and takes a second to start; validation needs the key path of every value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsctl.errors import InvalidInput, Problem
from opsctl.site.yamlfile import display_path, read_mapping

GROUP_KEYS = {"hosts", "children", "vars"}


@dataclass
class InventoryHost:
    name: str
    vars: dict[str, Any] = field(default_factory=dict)
    # key path of each place the host is declared, by group
    declared_at: dict[str, str] = field(default_factory=dict)


@dataclass
class Inventory:
    file: str
    hosts: dict[str, InventoryHost] = field(default_factory=dict)
    # group -> hosts directly or through children
    groups: dict[str, set[str]] = field(default_factory=dict)
    children: dict[str, set[str]] = field(default_factory=dict)
    group_paths: dict[str, str] = field(default_factory=dict)

    def members(self, group: str) -> set[str]:
        if group == "all":
            return set(self.hosts)
        seen: set[str] = set()
        result: set[str] = set()
        stack = [group]
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            result |= self.groups.get(current, set())
            stack.extend(self.children.get(current, set()))
        return result

    def host_groups(self, host: str) -> set[str]:
        return {g for g in self.groups if host in self.members(g)} | {"all"}


def load_inventory(path: Path) -> Inventory:
    data = read_mapping(path)
    inv = Inventory(file=display_path(path))
    problems: list[Problem] = []
    for name, body in data.items():
        _walk_group(inv, str(name), body, str(name), problems)
    if problems:
        raise InvalidInput(problems)
    return inv


def _walk_group(
    inv: Inventory, group: str, body: Any, keypath: str, problems: list[Problem]
) -> None:
    inv.group_paths.setdefault(group, keypath)
    inv.groups.setdefault(group, set())
    if body is None:
        return
    if not isinstance(body, dict):
        problems.append(Problem(inv.file, keypath, "a group must be a mapping"))
        return
    unknown = set(body) - GROUP_KEYS
    for key in sorted(unknown, key=str):
        problems.append(
            Problem(inv.file, f"{keypath}.{key}", "unknown key (a group has hosts, children, vars)")
        )
    hosts = body.get("hosts") or {}
    if not isinstance(hosts, dict):
        problems.append(Problem(inv.file, f"{keypath}.hosts", "must be a mapping of host names"))
        hosts = {}
    for hname, hvars in hosts.items():
        hpath = f"{keypath}.hosts.{hname}"
        if hvars is not None and not isinstance(hvars, dict):
            problems.append(Problem(inv.file, hpath, "host variables must be a mapping"))
            continue
        host = inv.hosts.setdefault(str(hname), InventoryHost(str(hname)))
        for key, value in (hvars or {}).items():
            if key in host.vars and host.vars[key] != value:
                problems.append(
                    Problem(inv.file, f"{hpath}.{key}", f"conflicts with {host.vars[key]!r} "
                            f"set at {_first_decl(host)}")
                )
            host.vars[key] = value
        host.declared_at.setdefault(group, hpath)
        inv.groups[group].add(str(hname))
    children = body.get("children") or {}
    if not isinstance(children, dict):
        problems.append(Problem(inv.file, f"{keypath}.children", "must be a mapping of groups"))
        children = {}
    for cname, cbody in children.items():
        inv.children.setdefault(group, set()).add(str(cname))
        _walk_group(inv, str(cname), cbody, f"{keypath}.children.{cname}", problems)


def _first_decl(host: InventoryHost) -> str:
    return next(iter(host.declared_at.values()), "another group")
