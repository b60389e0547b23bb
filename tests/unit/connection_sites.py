"""Copies of the reference site with another connection section, for the connection tests."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from opsctl.site.model import Site, load_site

ROOT = Path(__file__).resolve().parents[2]
BASTION = {"user": "ops", "port": 2222, "identity_file": "/keys/ops_ed25519",
           "become": {"password": "secrets"}, "jump": {"host": "mon1"}}


def site_copy(tmp_path: Path, connection: dict[str, Any] | None,
              host_vars: dict[str, dict[str, Any]] | None = None) -> Path:
    directory = tmp_path / "province"
    shutil.copytree(ROOT / "inventory" / "reference", directory)
    site_file = directory / "group_vars" / "all" / "site.yml"
    data = yaml.safe_load(site_file.read_text())
    data["site"].pop("connection", None)
    # The management zone's SSH flow opens the port the site's sshd listens on (and, with a
    # connection section, each host's own; without one, a host's port is left unopened).
    ports = {(connection or {}).get("port", 22)}
    if connection is not None:
        data["site"]["connection"] = connection
        ports |= {v["ansible_port"] for v in (host_vars or {}).values() if "ansible_port" in v}
    for flow in data["site"]["flows"]:
        if flow["name"] == "mgmt-ssh":
            flow["ports"] = sorted(ports)
    site_file.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    if host_vars:
        hosts_file = directory / "hosts.yml"
        inventory = yaml.safe_load(hosts_file.read_text())
        for group in inventory["all"]["children"].values():
            for name, hvars in (group.get("hosts") or {}).items():
                if name in host_vars and hvars is not None:
                    hvars.update(host_vars[name])
        hosts_file.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return directory


def load_copy(tmp_path: Path, connection: dict[str, Any] | None,
              host_vars: dict[str, dict[str, Any]] | None = None) -> Site:
    return load_site(str(site_copy(tmp_path, connection, host_vars)))
