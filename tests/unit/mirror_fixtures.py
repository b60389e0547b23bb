"""A copy of the reference site whose mirror is served by mon1 (shared by the mirror tests)."""

from __future__ import annotations

from pathlib import Path

import yaml

MIRROR_FLOW = {"name": "mirror-host", "from": "all", "to": "mirror", "ports": [3142],
               "why": "every host installs packages from the offline mirror only"}


def edit(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


def with_mirror(site: Path, mirror: dict, *, flow: dict | None = MIRROR_FLOW,
                drop_control_flow: bool = True) -> None:
    """site.mirror set, a `mirror` group holding mon1, and (optionally) the flow to it."""
    def change_site(d):
        d["site"]["mirror"] = mirror
        if drop_control_flow:
            d["site"]["flows"] = [f for f in d["site"]["flows"] if f["name"] != "mirror"]
        if flow is not None:
            d["site"]["flows"].append(flow)
    edit(site / "group_vars" / "all" / "site.yml", change_site)
    edit(site / "hosts.yml",
         lambda d: d["all"]["children"].update({"mirror": {"hosts": {"mon1": None}}}))
