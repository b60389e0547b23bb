#!/usr/bin/python3
"""Make a PostgreSQL state true: run a check query, and the SQL only when it says false."""

from __future__ import annotations

DOCUMENTATION = r"""
module: opsctl_pg_ensure
short_description: Run SQL on the local cluster only when a check query returns false
description:
  - Runs O(check) with psql as the postgres user over the local socket. When it returns
    C(t) nothing happens; otherwise O(sql) runs (each statement on its own, outside a
    transaction, so CREATE DATABASE works) and the task reports a change.
  - In check mode the SQL is not run; the task reports what it would change.
options:
  database:
    description: Database to connect to.
    type: str
    default: postgres
  check:
    description: A query returning one boolean; true means the state already holds.
    type: str
    required: true
  sql:
    description: Statements that make the state hold, each run on its own.
    type: list
    elements: str
    required: true
  port:
    description: The cluster's port.
    type: int
    default: 5432
author: opsctl
"""

EXAMPLES = r"""
- name: Create the database
  opsctl_pg_ensure:
    check: "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'query')"
    sql: ["CREATE DATABASE query OWNER query_owner"]
"""

RETURN = r"""
executed:
  description: The statements that ran.
  type: list
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.opsctl_psql import psql as run_psql  # noqa: E402


def psql(module: AnsibleModule, database: str, port: int, sql: str) -> str:
    return run_psql(module, sql, port, database, what=f"psql on {database}", sql=sql)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "database": {"type": "str", "default": "postgres"},
            "check": {"type": "str", "required": True},
            "sql": {"type": "list", "elements": "str", "required": True},
            "port": {"type": "int", "default": 5432},
        },
        supports_check_mode=True,
    )
    database, port = module.params["database"], module.params["port"]
    holds = psql(module, database, port, module.params["check"]) == "t"
    if holds:
        module.exit_json(changed=False, executed=[])
    if module.check_mode:
        module.exit_json(changed=True, executed=[])
    for statement in module.params["sql"]:
        psql(module, database, port, statement)
    module.exit_json(changed=True, executed=module.params["sql"])


if __name__ == "__main__":
    main()
