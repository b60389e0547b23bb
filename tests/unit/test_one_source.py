"""One source for every constant: where a value cannot be read from its owner, a test ties
the copy to it, so changing a port or a path in one place and not the other fails here.

- The roles' `site.X | default(V)` fallbacks (for a site.yml that leaves X out: Ansible reads
  site.yml as written, not the model with its defaults filled in) against the site model's
  defaults (opsctl/site/schema.py).
- Code that runs on hosts (monitor/, scheduler/), which cannot read roles/*/defaults, against
  the role defaults it copies.
- Roles that repeat another role's value (a role cannot see another role's defaults).
- opsctl itself reads role defaults (opsctl/roles.py): no literal copy may come back.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from opsctl.paths import project_root
from opsctl.roles import role_default, role_defaults
from opsctl.site.schema import SiteSpec
from opsctl.site.yamlfile import read_mapping

ROOT = project_root()
FALLBACK = re.compile(r"\bsite((?:\.\w+)+)\s*\|\s*default\(([^()]*)\)")
JINJA_CONSTANTS = {"true": True, "false": False, "none": None}
# Fallbacks for fields the model requires: a site always has them; the fallback only serves
# a role applied without a site, and the model has no default to compare with.
REQUIRED_FIELDS = {"name", "zones"}


def jinja_literal(text: str) -> Any:
    text = text.strip()
    if text.lower() in JINJA_CONSTANTS:
        return JINJA_CONSTANTS[text.lower()]
    return ast.literal_eval(text)


def site_fallbacks() -> list[tuple[str, str, str]]:
    """(file, dotted path under `site`, fallback text) for every fallback in roles and plays."""
    found = []
    files = sorted([*ROOT.glob("roles/**/*.yml"), *ROOT.glob("roles/**/*.j2"),
                    *ROOT.glob("playbooks/*.yml")])
    for path in files:
        for m in FALLBACK.finditer(path.read_text(encoding="utf-8")):
            found.append((str(path.relative_to(ROOT)), m.group(1)[1:], m.group(2)))
    return found


FALLBACKS = site_fallbacks()


def model_field(dotted: str):
    model: type[BaseModel] = SiteSpec
    *parents, last = dotted.split(".")
    for name in parents:
        model = model.model_fields[name].annotation
        assert isinstance(model, type) and issubclass(model, BaseModel), dotted
    return model.model_fields[last]


def test_the_fallbacks_are_found():
    paths = {dotted for _, dotted, _ in FALLBACKS}
    assert {"agent_port", "backup.stanza", "backup.archive_timeout", "backup.retention_full",
            "backup.retention_diff", "backup.compress_type", "backup.max_age_hours",
            "connection.port"} <= paths


@pytest.mark.parametrize(("where", "dotted", "fallback"), FALLBACKS,
                         ids=[f"{w}:{d}" for w, d, _ in FALLBACKS])
def test_role_fallback_is_the_site_models_default(where, dotted, fallback):
    field = model_field(dotted)
    if field.is_required():
        assert dotted in REQUIRED_FIELDS, f"{where}: site.{dotted} is required in the model"
        return
    expected = field.get_default(call_default_factory=True)
    if isinstance(expected, BaseModel):
        expected = expected.model_dump()
    assert jinja_literal(fallback) == expected, (
        f"{where}: site.{dotted} falls back to {fallback}, the site model's default is "
        f"{expected!r} (opsctl/site/schema.py)")


# --- code shipped to hosts ----------------------------------------------------------------


def test_monitor_listens_on_the_sites_agent_port_by_default():
    from monitor.__main__ import DEFAULT_LISTEN  # noqa: PLC0415

    assert DEFAULT_LISTEN[1] == SiteSpec.model_fields["agent_port"].default


def test_monitor_postgresql_defaults_are_the_roles():
    from monitor.collectors.postgresql import PostgresSettings  # noqa: PLC0415

    configured = role_default("monitor_agent", "monitor_agent_postgresql")
    got = PostgresSettings()
    assert {key: getattr(got, key) for key in configured} == configured
    assert configured["port"] == role_default("postgresql", "postgresql_port")
    assert configured["user"] == role_default("postgresql", "postgresql_monitor_role")


def test_extract_defaults_are_the_postgresql_roles():
    from scheduler.actions import extract_desensitised as extract  # noqa: PLC0415

    assert role_default("postgresql", "postgresql_port") == extract.DEFAULT_PORT
    assert role_default("postgresql", "postgresql_extract_role") == extract.DEFAULT_ROLE


def test_scheduler_defaults_are_the_files_the_roles_service_names():
    from scheduler.__main__ import DEFAULT_HISTORY, DEFAULT_JOBS  # noqa: PLC0415

    config_dir = role_default("scheduler_agent", "scheduler_agent_config_dir")
    state_dir = role_default("scheduler_agent", "scheduler_agent_state_dir")
    assert Path(config_dir) / "jobs.json" == DEFAULT_JOBS
    assert Path(state_dir) / "history.db" == DEFAULT_HISTORY


def test_the_jobs_commands_use_the_files_the_roles_service_names():
    from opsctl.jobs.fleet import REMOTE_SCHEDULER  # noqa: PLC0415

    unit = (ROOT / "roles/scheduler_agent/templates/opsctl-scheduler.service.j2").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    rendered = re.sub(r"\{\{\s*(\w+)\s*\}\}",
                      lambda m: str(role_default("scheduler_agent", m.group(1))), exec_start)
    argv = rendered.removeprefix("ExecStart=").split()
    options = argv[argv.index("scheduler") + 1:]
    assert REMOTE_SCHEDULER[REMOTE_SCHEDULER.index("scheduler") + 1:] == options


def test_agent_and_collector_read_the_disabled_units_the_hardening_role_writes():
    from monitor.collectors.systemd import DISABLED_DIR  # noqa: PLC0415
    from monitor.config import AgentConfig  # noqa: PLC0415
    from security.collector import DISABLED_UNITS_DIR  # noqa: PLC0415

    written = role_default("hardening", "hardening_disabled_units_dir")
    assert str(DISABLED_DIR) == str(AgentConfig().disabled_units_dir) == written
    assert written == DISABLED_UNITS_DIR


def test_db_lag_bound_is_patronis():
    from opsctl.db.cluster import MAX_LAG_BYTES  # noqa: PLC0415

    bound = role_default("postgresql", "postgresql_patroni_maximum_lag_on_failover")
    assert bound == MAX_LAG_BYTES


# --- roles that repeat another role's value -------------------------------------------------


def value(ref: str) -> Any:
    """`role:key` or `role:key.subkey`, a literal from the role's defaults."""
    role, _, key = ref.partition(":")
    key, _, sub = key.partition(".")
    got = role_default(role, key)
    return got[sub] if sub else got


SAME = [
    # the database cluster
    ["postgresql:postgresql_version", "backup:backup_pg_version"],
    ["postgresql:postgresql_port", "backup:backup_pg_port",
     "scheduler_agent:scheduler_agent_lock_port", "monitor_agent:monitor_agent_postgresql.port"],
    ["postgresql:postgresql_patroni_port", "backup:backup_patroni_port"],
    ["postgresql:postgresql_patroni_config_dir", "backup:backup_patroni_config_dir"],
    ["postgresql:postgresql_db_group", "backup:backup_db_group",
     "monitor_agent:monitor_agent_postgresql_group"],
    ["postgresql:postgresql_primary_group", "backup:backup_primary_group"],
    ["postgresql:postgresql_backup_group", "backup:backup_repo_group",
     "monitor_agent:monitor_agent_pgbackrest_group"],
    ["postgresql:postgresql_scheduler_role", "scheduler_agent:scheduler_agent_lock_role"],
    ["postgresql:postgresql_scheduler_database", "scheduler_agent:scheduler_agent_lock_database"],
    ["postgresql:postgresql_scheduler_groups", "scheduler_agent:scheduler_agent_lock_groups"],
    ["postgresql:postgresql_monitor_role", "monitor_agent:monitor_agent_postgresql.user"],
    ["backup:backup_repo_user", "monitor_agent:monitor_agent_pgbackrest_user"],
    # the PKI
    ["pki:pki_dir", "postgresql:postgresql_pki_dir", "backup:backup_pki_dir",
     "logserver:logserver_pki_dir", "hardening:hardening_rsyslog_pki_dir"],
    ["pki:pki_group", "postgresql:postgresql_pki_group", "monitor_agent:monitor_agent_tls_group"],
    # logs, monitoring, scheduling
    ["logserver:logserver_port", "hardening:hardening_rsyslog_port"],
    ["alertmanager:alertmanager_port", "prometheus:prometheus_alertmanager_port"],
    ["scheduler_agent:scheduler_agent_home", "monitor_agent:monitor_agent_scheduler_home"],
    ["monitor_agent:monitor_agent_user", "scheduler_agent:scheduler_agent_reader_group",
     "postgresql:postgresql_monitor_os_user", "prometheus:prometheus_relay_user"],
    ["monitor_agent:monitor_agent_home", "prometheus:prometheus_relay_home"],
    # units left off by design: the hardening role writes, the agent reads
    ["hardening:hardening_disabled_units_dir", "monitor_agent:monitor_agent_disabled_units_dir"],
]


@pytest.mark.parametrize("refs", SAME, ids=[refs[0] for refs in SAME])
def test_roles_repeating_a_value_agree(refs):
    values = {ref: value(ref) for ref in refs}
    assert len({repr(v) for v in values.values()}) == 1, values


def test_roles_paths_under_another_roles_directory_agree():
    pki = role_default("pki", "pki_dir")
    assert role_default("scheduler_agent", "scheduler_agent_lock_ca") == f"{pki}/ca.crt"
    assert role_default("prometheus", "prometheus_agent_ca_file") == f"{pki}/ca.crt"
    assert role_default("monitor_agent", "monitor_agent_tls_cert") == f"{pki}/host.crt"
    assert role_default("monitor_agent", "monitor_agent_tls_key") == f"{pki}/host.key"
    assert role_default("monitor_agent", "monitor_agent_certificates") == [f"{pki}/host.crt",
                                                                          f"{pki}/ca.crt"]
    assert role_default("monitor_agent", "monitor_agent_scheduler_history") == (
        f"{role_default('scheduler_agent', 'scheduler_agent_state_dir')}/history.db")
    assert role_default("scheduler_agent", "scheduler_agent_compliance_file") == (
        f"{role_default('monitor_agent', 'monitor_agent_state_dir')}/compliance.json")


def test_packages_are_the_postgresql_version():
    version = role_default("postgresql", "postgresql_version")
    assert f"postgresql-{version}" in role_default("postgresql", "postgresql_packages")
    assert f"postgresql-{version}" in role_default("backup", "backup_repo_packages")
    assert f"postgresql-client-{version}" in role_default("postgresql",
                                                          "postgresql_client_packages")
    assert f"postgresql-client-{version}" in role_default("scheduler_agent",
                                                          "scheduler_agent_packages")


def test_pgbackrests_accounts_may_log_in():
    allowed = role_defaults("hardening")["hardening_sshd_allow_users"]
    assert role_default("backup", "backup_repo_user") in allowed
    assert role_default("backup", "backup_pg_user") in allowed


# --- opsctl reads the roles' values ---------------------------------------------------------


def test_opsctls_layout_is_the_roles():
    from opsctl.backup import ops as backup  # noqa: PLC0415
    from opsctl.check.netfacts import LOG_TLS_PORT  # noqa: PLC0415
    from opsctl.db import ops as db  # noqa: PLC0415

    read = {
        "backup:backup_repo_user": backup.REPO_USER,
        "backup:backup_pg_user": backup.PG_USER,
        "backup:backup_drill_path": backup.DRILL_PATH,
        "backup:backup_drill_config": backup.DRILL_CONFIG,
        "postgresql:postgresql_patroni_port": db.PATRONI_PORT,
        "postgresql:postgresql_patroni_config_dir": db.PATRONI_CONFIG,
        "postgresql:postgresql_patroni_maximum_lag_on_failover": db.DEFAULT_MAX_LAG,
        "logserver:logserver_port": LOG_TLS_PORT,
    }
    assert {ref: value(ref) for ref in read} == read
    assert backup.PG_BIN.split("/") == ["", "usr", "lib", "postgresql",
                                        value("backup:backup_pg_version"), "bin"]
    assert db.CA_FILE.rpartition("/") == (value("pki:pki_dir"), "/", "ca.crt")


# Literals the roles own; opsctl reads them (opsctl/roles.py) or takes them from the site.
# (/usr/lib/postgresql/VERSION is Debian's layout; only the version is the roles'.)
OWNED = re.compile(r"\b(8008|6514|9090|9093|9110|5432)\b|/etc/opsctl/pki|/opt/opsctl-|"
                   r"/etc/patroni|/usr/lib/postgresql/\d|/var/lib/pgbackrest|/etc/pgbackrest")
# The site model's own default, which the roles' fallbacks repeat (tested above).
OWNED_HERE = {("opsctl/site/schema.py", "agent_port: int = Field(default=9110")}


def test_opsctl_keeps_no_copy_of_a_roles_value():
    found = []
    for path in sorted((ROOT / "opsctl").rglob("*.py")):
        where = str(path.relative_to(ROOT))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if OWNED.search(code) and not any(where == w and s in code for w, s in OWNED_HERE):
                found.append(f"{where}:{number}: {line.strip()}")
    assert found == []


def test_status_lag_bounds_are_the_alerts():
    import yaml  # noqa: PLC0415

    from opsctl.status.view import LAG_BYTES_MAX, LAG_SECONDS_MAX  # noqa: PLC0415

    rules = yaml.safe_load((ROOT / "monitor/rules/opsctl.rules.yml").read_text())
    alert = next(r for g in rules["groups"] for r in g["rules"]
                 if r.get("alert") == "OpsctlReplicationLag")
    seconds = re.search(r"lag_seconds > ([\d.]+)", alert["expr"]).group(1)
    factors = re.search(r"lag_bytes > ([\d* ]+)", alert["expr"]).group(1).split("*")
    product = 1
    for factor in factors:
        product *= int(factor)
    assert (float(seconds), product) == (LAG_SECONDS_MAX, LAG_BYTES_MAX)


def test_the_password_alert_warns_when_password_status_does() -> None:
    """`opsctl site password status` and the monitor's alert name the same fortnight."""
    import yaml

    from opsctl.admin.password import WARN_DAYS

    rules = yaml.safe_load((ROOT / "monitor" / "rules" / "opsctl.rules.yml").read_text())
    rule = next(r for g in rules["groups"] for r in g["rules"]
                if r.get("alert") == "OpsctlPasswordExpiring")
    assert rule["expr"].endswith(f"< {WARN_DAYS} * 86400")
    assert f"within {WARN_DAYS} days" in rule["annotations"]["summary"]


def _rendered(value: str, **names: str) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: names[m.group(1)], value)


def test_aide_leaves_out_every_data_directory_a_role_names():
    """The hardening role cannot see the other roles' defaults: its list of the platform's data
    directories (AIDE regular expressions) must cover each of them, or the daily AIDE check
    reports database pages and job history as findings every day."""
    expression = role_defaults("hardening")["hardening_aide_exclude_data"]
    patterns = re.findall(r"'(/[^']+)'", expression)
    postgresql = read_mapping(ROOT / "roles" / "postgresql" / "vars" / "main.yml")
    data_dirs = [
        role_default("backup", "backup_repo_path"),
        role_default("backup", "backup_spool_path"),
        role_default("backup", "backup_drill_path"),
        _rendered(role_defaults("etcd")["etcd_data_dir"],
                  etcd_cluster_token=role_default("etcd", "etcd_cluster_token")),
        _rendered(postgresql["postgresql_data_dir"], postgresql_version="15",
                  postgresql_cluster="main"),
        role_default("monitor_agent", "monitor_agent_aide_status_dir"),
        role_default("monitor_agent", "monitor_agent_pgbackrest_status_dir"),
        role_default("scheduler_agent", "scheduler_agent_state_dir"),
    ]
    uncovered = [d for d in data_dirs
                 if not any(re.fullmatch(p + "(/.*)?", d) for p in patterns)]
    assert not uncovered, f"hardening_aide_exclude_data misses {uncovered}"
    # each component's state directory: the list maps site.components to /var/lib/NAME
    assert role_defaults("component")["component_state_dir"] == "/var/lib/{{ component_name }}"
    assert "map('regex_replace', '^', '/var/lib/')" in expression


def test_the_collector_checks_the_aide_status_the_monitor_agent_role_writes():
    """aide_findings_exported reads the role's status file, timer and agent group through
    copies in the collector (it runs alone on the host)."""
    import yaml  # noqa: PLC0415

    from security.collector import AGENT_GROUP, AIDE_STATUS_FILE, AIDE_STATUS_TIMER  # noqa: PLC0415

    directory = role_default("monitor_agent", "monitor_agent_aide_status_dir")
    assert f"{directory}/status.json" == AIDE_STATUS_FILE
    assert role_default("monitor_agent", "monitor_agent_user") == AGENT_GROUP
    role = ROOT / "roles" / "monitor_agent"
    service = (role / "templates" / "opsctl-aide-status.service.j2").read_text()
    assert "--output {{ monitor_agent_aide_status_dir }}/status.json" in service
    tasks = yaml.safe_load((role / "tasks" / "main.yml").read_text())
    enabled = [t["ansible.builtin.systemd_service"]["name"] for t in tasks
               if t.get("ansible.builtin.systemd_service", {}).get("enabled")]
    assert AIDE_STATUS_TIMER in enabled
    made = next(t for t in tasks if t["name"] == "Create the agent's directories")
    status_dir = next(i for i in made["loop"]
                      if i["path"] == "{{ monitor_agent_aide_status_dir }}")
    assert (status_dir["group"], status_dir["mode"]) == ("{{ monitor_agent_user }}", "2750")


def test_the_aide_status_check_is_stale_when_the_alert_is():
    """aide_findings_exported's bound on the status's age is OpsctlFileIntegrityCheckStale's."""
    import yaml  # noqa: PLC0415

    rules = yaml.safe_load((ROOT / "monitor" / "rules" / "opsctl.rules.yml").read_text())
    alert = next(r for g in rules["groups"] for r in g["rules"]
                 if r.get("alert") == "OpsctlFileIntegrityCheckStale")
    bound = re.search(r"time\(\) - opsctl_aide_status_timestamp_seconds > (\d+)", alert["expr"])
    check = yaml.safe_load((ROOT / "security" / "catalog" / "host"
                            / "aide_findings_exported.yml").read_text())
    age = next(leaf for leaf in check["pass"]["all_of"]
               if leaf["fact"] == "aide.status_age_seconds")
    assert bound is not None and (age["op"], age["value"]) == ("le", int(bound.group(1)))
