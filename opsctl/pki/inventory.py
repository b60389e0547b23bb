"""Which certificate files each host holds and which services use them: read from the roles.

Pure over the repository's files: a consumer names the role, the defaults keys that hold its
certificate path and port (the values are read from roles/<role>/defaults/main.yml, never
copied here), how it reloads a new certificate and the tag of the task that makes it do so.
Which hosts run a role comes from the playbooks' plays (`hosts:` and `roles:`). A test ties
the list below to every role whose defaults or templates name the pki role's files, so a new
consumer cannot be forgotten.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from opsctl.errors import InvalidInput, Problem
from opsctl.paths import project_root
from opsctl.roles import role_default, role_defaults
from opsctl.site.model import Site


@dataclass(frozen=True)
class Consumer:
    """A service that uses the host certificate (and the site CA to check its peers)."""

    role: str
    service: str  # what an operator calls it
    cert: str  # defaults key of the certificate path, or "<dir key>/<file>"
    port: str | None  # defaults key of the port it presents it on (None: client only)
    # what a new certificate costs it: reload | restart | none (it reads the files again)
    reload: str
    tag: str | None  # the tag of the role's task that reloads it when the certificate changed
    starttls: str | None = None  # "postgres": an SSLRequest before the handshake
    # play: the playbooks' plays; mirror: site.mirror's host; log_senders: the plays' hosts
    # but those of group `logging`
    hosts: str = "play"


CONSUMERS: tuple[Consumer, ...] = (
    Consumer("lb", "nginx (load balancer)", "lb_tls_cert", "lb_port", "reload", "lb-tls"),
    Consumer("mirror_server", "nginx (offline mirror)", "mirror_server_tls_cert",
             "mirror_server_port", "reload", "mirror_server-tls", hosts="mirror"),
    Consumer("postgresql", "PostgreSQL", "postgresql_pki_dir/host.crt", "postgresql_port",
             "reload", "postgresql-tls", starttls="postgres"),
    Consumer("postgresql", "Patroni REST API", "postgresql_pki_dir/host.crt",
             "postgresql_patroni_port", "reload", "postgresql-tls"),
    # etcd (>= 3.2) reads its certificate and key again for every TLS handshake.
    Consumer("etcd", "etcd (clients)", "etcd_pki_dir/host.crt", "etcd_client_port", "none",
             None),
    Consumer("etcd", "etcd (peers)", "etcd_pki_dir/host.crt", "etcd_peer_port", "none", None),
    # The agent makes its TLS context again when the files change (monitor/webconfig.py).
    Consumer("monitor_agent", "monitoring agent", "monitor_agent_tls_cert",
             "monitor_agent_port", "none", None),
    Consumer("logserver", "rsyslog (log receiver)", "logserver_pki_dir/host.crt",
             "logserver_port", "restart", "logserver-tls"),
    # Every host forwards its logs but the log collectors themselves (they keep their own).
    Consumer("hardening", "rsyslog (log forwarding, client)",
             "hardening_rsyslog_pki_dir/host.crt", None, "restart", "rsyslog_forwarding",
             hosts="log_senders"),
)

# The site's trust bundle on the hosts: the pki role's copy (every service that checks a
# peer reads it) and apt's. Each with the tag of the task that installs it.
CA_FILES: tuple[tuple[str, str, str, str], ...] = (
    ("pki", "pki_dir/ca.crt", "site CA (services checking their peers)", "pki-files"),
    ("base", "base_mirror_ca_dest", "apt (the offline mirror's CA)", "base-mirror-ca"),
)
# The system store: one file per CA of the bundle under /usr/local/share/ca-certificates.
SYSTEM_STORE_TAG = "pki-trust"


@dataclass(frozen=True)
class CaConsumer:
    """A service that checks its peers against the trust bundle (pki_dir/ca.crt)."""

    role: str
    service: str
    ca: str  # defaults key of the CA file it reads, or "<dir key>/<file>"
    # what a new bundle costs it: reload | restart | rolling-restart (one member at a time,
    # each healthy before the next) | none (it reads the file at each new connection)
    reload: str
    tag: str | None  # the tag of the role's task that reloads it when the bundle changed
    hosts: str = "play"


CA_CONSUMERS: tuple[CaConsumer, ...] = (
    # ssl_ca_file is read again on a reload; Patroni's REST and etcd clients and libpq
    # (replication) read it per connection.
    CaConsumer("postgresql", "PostgreSQL and Patroni", "postgresql_pki_dir/ca.crt", "reload",
               "postgresql-tls"),
    # etcd builds its client and peer CA pools once, at start.
    CaConsumer("etcd", "etcd (peers and clients)", "etcd_pki_dir/ca.crt", "rolling-restart",
               "etcd-ca"),
    CaConsumer("logserver", "rsyslog (log receiver)", "logserver_pki_dir/ca.crt", "restart",
               "logserver-tls"),
    CaConsumer("hardening", "rsyslog (log forwarding)", "hardening_rsyslog_pki_dir/ca.crt",
               "restart", "rsyslog_forwarding", hosts="log_senders"),
    # Prometheus re-reads ca_file by itself; libpq and Ansible's uri read it per connection.
    CaConsumer("prometheus", "Prometheus (scraping the agents)", "prometheus_agent_ca_file",
               "none", None),
    CaConsumer("scheduler_agent", "scheduler (cluster lock over libpq)",
               "scheduler_agent_lock_ca", "none", None),
    CaConsumer("backup", "pgBackRest role (Patroni's REST checks)", "backup_pki_dir/ca.crt",
               "none", None),
)

# Ports a role takes from the site model rather than a literal default.
_SITE_PORTS: dict[str, Callable[[Site], int]] = {
    "monitor_agent_port": lambda site: site.agent_port,
    "mirror_server_port": lambda site: site.mirror.port,
}


@dataclass(frozen=True)
class Use:
    """One service on one host and the certificate file it uses."""

    host: str
    service: str
    role: str
    path: str
    kind: str  # host | ca
    port: int | None = None
    reload: str = "none"
    tag: str | None = None
    starttls: str | None = None


def _path(role: str, spec: str) -> str:
    key, _, name = spec.partition("/")
    value = str(role_default(role, key))
    return f"{value}/{name}" if name else value


def _port(site: Site, role: str, key: str) -> int:
    value = role_defaults(role).get(key)
    if isinstance(value, int):
        return value
    if key in _SITE_PORTS:
        return _SITE_PORTS[key](site)
    raise InvalidInput([Problem(f"roles/{role}/defaults/main.yml", key,
                                "not a port opsctl can read")])


@cache
def role_plays(playbooks: Path | None = None) -> dict[str, frozenset[str]]:
    """role → the host patterns of the plays that run its main entry (templated patterns are
    left out: only a run knows them)."""
    directory = playbooks or project_root() / "playbooks"
    found: dict[str, set[str]] = {}
    for path in sorted(directory.glob("*.yml")):
        for play in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            hosts = play.get("hosts") if isinstance(play, dict) else None
            if not isinstance(hosts, str) or "{{" in hosts:
                continue
            for role in _play_roles(play):
                found.setdefault(role, set()).add(hosts)
    return {role: frozenset(patterns) for role, patterns in found.items()}


def _play_roles(play: dict[str, Any]) -> list[str]:
    roles = [r if isinstance(r, str) else r.get("role") or r.get("name")
             for r in play.get("roles") or []]
    for task in play.get("tasks") or []:
        for key in ("ansible.builtin.import_role", "ansible.builtin.include_role",
                    "import_role", "include_role"):
            spec = task.get(key) if isinstance(task, dict) else None
            if isinstance(spec, dict) and spec.get("tasks_from") in (None, "main", "main.yml"):
                roles.append(spec.get("name"))
    return [r for r in roles if isinstance(r, str)]


def _expand(site: Site, pattern: str) -> set[str]:
    hosts: set[str] = set()
    for part in pattern.split(":"):
        if part == "all":
            hosts |= set(site.hosts)
        elif part in site.groups:
            hosts |= set(site.groups[part])
        elif part in site.hosts:
            hosts.add(part)
    return hosts


def role_hosts(site: Site, consumer: Consumer | CaConsumer) -> set[str]:
    if consumer.hosts == "mirror":
        return {site.mirror.host} if site.mirror.host else set()
    hosts = {h for pattern in role_plays().get(consumer.role, ()) for h in _expand(site, pattern)}
    if consumer.hosts == "log_senders":
        hosts -= set(site.groups.get("logging", ()))
    return hosts


def uses(site: Site, hosts: list[str] | None = None) -> list[Use]:
    """Every (host, service, certificate file) of the site, or of `hosts`; the CA files too."""
    wanted = set(site.hosts) if hosts is None else set(hosts)
    out: list[Use] = []
    for consumer in CONSUMERS:
        path = _path(consumer.role, consumer.cert)
        port = _port(site, consumer.role, consumer.port) if consumer.port else None
        for host in sorted(role_hosts(site, consumer) & wanted):
            out.append(Use(host, consumer.service, consumer.role, path, "host", port,
                           consumer.reload, consumer.tag, consumer.starttls))
    for host in sorted(wanted):
        for role, spec, service, _tag in CA_FILES:
            # apt's copy: where apt reaches the mirror over https (its own host reads files)
            if role == "base" and (not site.mirror.tls or host == site.mirror.host):
                continue
            out.append(Use(host, service, role, _path(role, spec), "ca"))
    return sorted(out, key=lambda u: (u.host, u.kind != "host", u.path, u.service))


def ca_uses(site: Site) -> list[Use]:
    """Every (host, service) that checks its peers against the trust bundle: what a change of
    the bundle (a CA rollover's two steps) makes each of them do."""
    out = [Use(host, c.service, c.role, _path(c.role, c.ca), "ca", None, c.reload, c.tag)
           for c in CA_CONSUMERS for host in sorted(role_hosts(site, c))]
    return sorted(out, key=lambda u: (u.host, u.service))


def trust_tags() -> tuple[str, ...]:
    """The tags of site.yml that install the trust bundle everywhere it is read and make
    every consumer take it up."""
    tags = {tag for _role, _spec, _service, tag in CA_FILES} | {SYSTEM_STORE_TAG}
    return tuple(sorted(tags | {c.tag for c in CA_CONSUMERS if c.tag}))
