"""The fact groups in the order they are collected, and the script's entry point: every group
gathered and parsed, one JSON document on stdout.

A group that cannot be gathered (missing command, unreadable file) becomes {"error": "reason"}
and the scan goes on. The walk comes last: it is bounded in time, and everything else is
cheap.
"""

from __future__ import annotations

import json
import socket
import sys
import time

from security.collector.accounts import fact_accounts, fact_login_defs, fact_shell, fact_sudo
from security.collector.audit import fact_audit, fact_auditd_conf
from security.collector.base import SCHEMA, FactError
from security.collector.clock import fact_time
from security.collector.database import fact_etcd, fact_patroni, fact_pgbackrest, fact_postgresql
from security.collector.files import fact_files, fact_walk
from security.collector.integrity import fact_aide, fact_clamav
from security.collector.kernel import (
    fact_limits,
    fact_mounts,
    fact_swap,
    fact_sysctl,
    fact_sysctl_access,
)
from security.collector.logs import fact_rsyslog
from security.collector.network import fact_listening, fact_nftables
from security.collector.nginx import fact_nginx
from security.collector.packages import fact_packages
from security.collector.pam import fact_faillock, fact_pam, fact_pwquality
from security.collector.services import fact_processes, fact_services
from security.collector.sshd import fact_sshd
from security.collector.system import fact_system

FACTS = {
    "system": fact_system,
    "accounts": fact_accounts,
    "login_defs": fact_login_defs,
    "pam": fact_pam,
    "pwquality": fact_pwquality,
    "faillock": fact_faillock,
    "shell": fact_shell,
    "sshd": fact_sshd,
    "packages": fact_packages,
    "services": fact_services,
    "processes": fact_processes,
    "audit": fact_audit,
    "auditd_conf": fact_auditd_conf,
    "rsyslog": fact_rsyslog,
    "files": fact_files,
    "sysctl": fact_sysctl,
    "sysctl_access": fact_sysctl_access,
    "listening": fact_listening,
    "mounts": fact_mounts,
    "limits": fact_limits,
    "sudo": fact_sudo,
    "time": fact_time,
    "nftables": fact_nftables,
    "aide": fact_aide,
    "clamav": fact_clamav,
    "postgresql": fact_postgresql,
    "nginx": fact_nginx,
    "pgbackrest": fact_pgbackrest,
    "swap": fact_swap,
    "etcd": fact_etcd,
    "patroni": fact_patroni,
    "walk": fact_walk,
}


def collect(names: list[str] | None = None) -> dict:
    started = time.monotonic()
    facts: dict[str, object] = {}
    for name in names or list(FACTS):
        try:
            facts[name] = FACTS[name]()
        except FactError as exc:
            facts[name] = {"error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - one broken fact must not end the scan
            facts[name] = {"error": f"collector bug: {type(exc).__name__}: {exc}"}
    return {
        "schema": SCHEMA,
        "host": socket.gethostname(),
        "collected_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(time.monotonic() - started, 3),
        "facts": facts,
    }


def main() -> None:
    json.dump(collect(sys.argv[1:] or None), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
