"""The tags a playbook can select: read from the playbook, the playbooks it imports and the
roles it uses, without Ansible's internals.

`--tags` or `--skip-tags` naming a tag nothing carries is a typo: Ansible would connect to
every host and select nothing (or skip nothing). `apply` refuses it before Ansible starts.

Edge: reads YAML files under playbooks/ and roles/; no click, never prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

# Ansible's own tags, valid whatever the playbook carries.
SPECIAL = frozenset({"all", "always", "never", "tagged", "untagged"})
_IMPORT_PLAYBOOK = frozenset({"import_playbook", "ansible.builtin.import_playbook"})
_ROLE_TASKS = frozenset({"import_role", "include_role", "ansible.builtin.import_role",
                         "ansible.builtin.include_role"})
_ROLE_LISTS = frozenset({"roles", "dependencies"})  # a play's roles, a role's meta


class _Walk:
    """Every `tags` value under the files reached from a playbook (a superset of what one
    run can select: every task and handler file of a role counts, whichever it includes)."""

    def __init__(self, roles_dir: Path) -> None:
        self.roles_dir = roles_dir
        self.tags: set[str] = set()
        self.seen: set[Path] = set()

    def file(self, path: Path) -> None:
        path = path.resolve()
        if path in self.seen or not path.is_file():
            return
        self.seen.add(path)
        self.node(yaml.safe_load(path.read_text(encoding="utf-8")), path.parent)

    def role(self, name: Any) -> None:
        if not isinstance(name, str):
            return
        root = self.roles_dir / name
        for part in ("tasks", "handlers"):
            for path in sorted((root / part).glob("*.y*ml")):
                self.file(path)
        self.file(root / "meta" / "main.yml")

    def add(self, tags: Any) -> None:
        if isinstance(tags, str):
            tags = tags.split(",")
        if isinstance(tags, list):
            self.tags |= {str(t).strip() for t in tags}

    def node(self, data: Any, base: Path) -> None:
        if isinstance(data, list):
            for item in data:
                self.node(item, base)
            return
        if not isinstance(data, dict):
            return
        self.add(data.get("tags"))
        for key, value in data.items():
            if key in _IMPORT_PLAYBOOK and isinstance(value, str):
                self.file(base / value)
            elif key in _ROLE_TASKS and isinstance(value, dict):
                self.role(value.get("name"))
            elif key in _ROLE_LISTS and isinstance(value, list):
                for entry in value:
                    if isinstance(entry, dict):
                        self.role(entry.get("role") or entry.get("name"))
                        self.add(entry.get("tags"))
                    else:
                        self.role(entry)
            elif isinstance(value, list | dict):
                self.node(value, base)


def playbook_tags(playbook: Path, roles_dir: Path) -> frozenset[str] | None:
    """The tags `playbook` can select, Ansible's own included; None when one of them is a
    template (only a run knows its value)."""
    walk = _Walk(roles_dir)
    walk.file(playbook)
    if any("{{" in tag or "{%" in tag for tag in walk.tags):
        return None
    return frozenset(walk.tags) | SPECIAL


def split_tags(given: tuple[str, ...]) -> list[str]:
    """`--tags a,b --tags c` as Ansible reads it: a, b, c."""
    return [t.strip() for value in given for t in value.split(",") if t.strip()]
