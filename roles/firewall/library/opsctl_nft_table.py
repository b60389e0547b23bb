#!/usr/bin/python3
"""Keep one nft table as its file says, including when it was changed by hand since."""

from __future__ import annotations

DOCUMENTATION = r"""
module: opsctl_nft_table
short_description: Load an nft table from its file when the file or the running table drifted
description:
  - The running table is compared, without counters (C(nft -s)), with the listing recorded
    right after this module last loaded O(path). When that record is missing, when O(path)
    changed since, when the table is gone, or when its rules differ (a rule added or deleted
    by hand), O(path) is loaded with C(nft -f) and the new listing recorded.
  - Loading the file directly replaces only the table the file names, atomically, and does not
    go through a service reload (which, right after the service's first start, can race it).
  - A template task alone sees only the file; this module sees the rules in force.
  - In check mode nothing is loaded; the task reports whether it would load and why.
options:
  path:
    description: The nft file that defines the table (deleting and recreating it).
    type: path
    required: true
  family:
    description: The table's family.
    type: str
    default: inet
  table:
    description: The table's name.
    type: str
    required: true
  state_file:
    description: Where the listing after the last load is kept (root only).
    type: path
    required: true
author: opsctl
"""

EXAMPLES = r"""
- name: Load the host firewall when its file or its running rules changed
  opsctl_nft_table:
    path: /etc/nftables.conf
    table: opsctl_host
    state_file: /var/lib/opsctl-firewall/opsctl_host.json
"""

RETURN = r"""
reason:
  description: Why the table was (or in check mode would be) loaded; empty when it was not.
  type: str
  returned: always
"""

import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402


def load_reason(source_sha256: str, running: str | None, recorded: dict | None) -> str:
    """Why the file must be loaded again; empty when the running table is as last loaded."""
    if recorded is None:
        return "no record of the last load"
    if recorded.get("source_sha256") != source_sha256:
        return "the file changed since the last load"
    if running is None:
        return "the table is not loaded"
    if running != recorded.get("listing"):
        return "the running rules differ from the file's (changed by hand)"
    return ""


def listing(module: AnsibleModule, family: str, table: str) -> str | None:
    rc, out, _err = module.run_command(["nft", "-s", "list", "table", family, table])
    return out if rc == 0 else None


def read_record(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_record(path: str, record: dict) -> None:
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".record-")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(record, handle)
    os.replace(temporary, path)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "family": {"type": "str", "default": "inet"},
            "table": {"type": "str", "required": True},
            "state_file": {"type": "path", "required": True},
        },
        supports_check_mode=True,
    )
    params = module.params
    try:
        with open(params["path"], "rb") as handle:
            source_sha256 = hashlib.sha256(handle.read()).hexdigest()
    except OSError as exc:
        module.fail_json(msg=f"cannot read {params['path']}: {exc.strerror}")
    before = listing(module, params["family"], params["table"])
    reason = load_reason(source_sha256, before, read_record(params["state_file"]))
    if not reason or module.check_mode:
        module.exit_json(changed=bool(reason), reason=reason)
    rc, out, err = module.run_command(["nft", "-f", params["path"]])
    if rc != 0:
        module.fail_json(msg=f"nft -f {params['path']} failed: {(err or out).strip()}",
                         reason=reason)
    after = listing(module, params["family"], params["table"])
    if after is None:
        module.fail_json(msg=f"table {params['family']} {params['table']} is not loaded after "
                             f"nft -f {params['path']}", reason=reason)
    write_record(params["state_file"], {"source_sha256": source_sha256, "listing": after})
    module.exit_json(changed=True, reason=reason,
                     diff={"before": before or "", "after": after,
                           "before_header": "running table", "after_header": params["path"]})


if __name__ == "__main__":
    main()
