"""psql for the role's modules (library/opsctl_pg_*.py): as the postgres user, over the local
socket, the SQL on stdin, stopping at the first error. Ansible ships it with each module that
imports it (`from ansible.module_utils.opsctl_psql import psql`: a role's module_utils/)."""

from __future__ import annotations

from typing import Any


def psql_argv(port: int, database: str = "postgres", separator: str | None = None) -> list[str]:
    """Unaligned, tuples only; `separator` between a row's fields (psql's default: `|`)."""
    fields = ["-F", separator] if separator is not None else []
    return ["runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-A", "-t", *fields,
            "-v", "ON_ERROR_STOP=1", "-p", str(port), "-d", database, "-f", "-"]


def psql(module: Any, script: str, port: int, database: str = "postgres",
         separator: str | None = None, what: str = "psql", **fail: Any) -> str:
    """What SCRIPT printed, stripped. On an error the module fails with `WHAT: psql's
    message` (and `fail`'s extra results)."""
    rc, out, err = module.run_command(psql_argv(port, database, separator), data=script,
                                      binary_data=True)
    if rc != 0:
        module.fail_json(msg=f"{what}: {err.strip() or out.strip()}", **fail)
    return out.strip()
