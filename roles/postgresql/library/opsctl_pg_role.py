#!/usr/bin/python3
"""A PostgreSQL role with a SCRAM password, changed only when the password no longer matches."""

from __future__ import annotations

DOCUMENTATION = r"""
module: opsctl_pg_role
short_description: Create or update a PostgreSQL role, idempotent for SCRAM passwords
description:
  - Creates the role when missing and sets its attributes.
  - The password is sent as a SCRAM-SHA-256 verifier computed here, so the clear text never
    reaches the server or its statement log; it is replaced only when the stored verifier
    does not match the given password.
options:
  name:
    description: Role name.
    type: str
    required: true
  password:
    description: Clear-text password (no_log); omit for a NOLOGIN role without one.
    type: str
  login:
    description: LOGIN or NOLOGIN.
    type: bool
    default: true
  replication:
    description: REPLICATION or NOREPLICATION.
    type: bool
    default: false
  port:
    description: The cluster's port.
    type: int
    default: 5432
author: opsctl
"""

EXAMPLES = r"""
- name: Application role
  opsctl_pg_role:
    name: app
    password: "{{ secret }}"
  no_log: true
"""

RETURN = r"""
actions:
  description: What changed (created, attributes, password).
  type: list
  returned: always
"""

import base64  # noqa: E402
import hashlib  # noqa: E402
import hmac  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.opsctl_psql import psql as run_psql  # noqa: E402

ITERATIONS = 4096
IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def scram_keys(password: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client = hmac.new(salted, b"Client Key", "sha256").digest()
    stored = hashlib.sha256(client).digest()
    server = hmac.new(salted, b"Server Key", "sha256").digest()
    return stored, server


def scram_verifier(password: str, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    stored, server = scram_keys(password, salt, ITERATIONS)
    b64 = base64.b64encode
    return (f"SCRAM-SHA-256${ITERATIONS}:{b64(salt).decode()}"
            f"${b64(stored).decode()}:{b64(server).decode()}")


def matches(verifier: str | None, password: str) -> bool:
    m = re.match(r"^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$", verifier or "")
    if not m:
        return False
    iterations, salt, stored, server = m.groups()
    want = scram_keys(password, base64.b64decode(salt), int(iterations))
    return hmac.compare_digest(want[0], base64.b64decode(stored)) and hmac.compare_digest(
        want[1], base64.b64decode(server))


def psql(module: AnsibleModule, port: int, sql: str) -> str:
    return run_psql(module, sql, port, separator="|")


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "password": {"type": "str", "no_log": True},
            "login": {"type": "bool", "default": True},
            "replication": {"type": "bool", "default": False},
            "port": {"type": "int", "default": 5432},
        },
        supports_check_mode=True,
    )
    p = module.params
    name, port = p["name"], p["port"]
    if not IDENT.match(name):
        module.fail_json(msg=f"role name {name!r} is not a plain lower-case identifier")
    row = psql(module, port, "SELECT rolcanlogin, rolreplication, coalesce(rolpassword, '') "
               f"FROM pg_authid WHERE rolname = '{name}'")
    want_attrs = ("LOGIN" if p["login"] else "NOLOGIN",
                  "REPLICATION" if p["replication"] else "NOREPLICATION")
    actions: list[str] = []
    statements: list[str] = []
    if not row:
        actions.append("created")
        statements.append(f"CREATE ROLE {name} {' '.join(want_attrs)}")
    else:
        login, replication, verifier = row.split("|", 2)
        if (login == "t", replication == "t") != (p["login"], p["replication"]):
            actions.append("attributes")
            statements.append(f"ALTER ROLE {name} {' '.join(want_attrs)}")
    if p["password"] is not None and (not row or not matches(row.split("|", 2)[2],
                                                             p["password"])):
        actions.append("password")
        statements.append(f"ALTER ROLE {name} PASSWORD '{scram_verifier(p['password'])}'")
    if statements and not module.check_mode:
        psql(module, port, ";\n".join(statements) + ";")
    module.exit_json(changed=bool(statements), actions=actions)


if __name__ == "__main__":
    main()
