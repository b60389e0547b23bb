"""The agent's configuration file: what to watch beyond the host itself.

JSON is accepted everywhere (it is also valid YAML); YAML needs PyYAML, which hosts
do not have, so the role writes JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.collectors.postgresql import PostgresSettings
from monitor.collectors.systemd import DISABLED_DIR


class ConfigError(Exception):
    """A configuration file the agent cannot use; the message names file, key and reason."""


def load_structured(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as json_error:
        try:
            import yaml  # noqa: PLC0415 - optional: only for hand-written YAML files
        except ImportError:
            raise ConfigError(f"{path}: not JSON ({json_error.msg} at line "
                              f"{json_error.lineno}) and PyYAML is not installed") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: malformed YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


@dataclass(frozen=True)
class AgentConfig:
    web_config: Path | None = None
    units: tuple[str, ...] = ()
    # where roles record the units they leave off on purpose (one file per unit, the reason)
    disabled_units_dir: Path = DISABLED_DIR
    certificates: tuple[Path, ...] = ()
    compliance_file: Path | None = None
    # the AIDE daily check's outcome, written by a root timer (monitor/aide_status.py)
    aide_status_file: Path | None = None
    scheduler_history: Path | None = None
    postgresql: PostgresSettings | None = None
    pgbackrest_status: Path | None = None
    backup_max_age_hours: float | None = None
    filesystem_types_ignored: tuple[str, ...] = (
        "proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue", "debugfs", "tracefs",
        "securityfs", "pstore", "bpf", "autofs", "configfs", "fusectl", "hugetlbfs",
        "binfmt_misc", "nsfs", "rpc_pipefs", "devtmpfs", "squashfs")
    extra_labels: dict[str, str] = field(default_factory=dict)


KNOWN_KEYS = {"web_config", "units", "disabled_units_dir", "certificates", "compliance_file",
              "aide_status_file", "scheduler_history", "labels", "postgresql", "pgbackrest"}
POSTGRES_KEYS = {"socket_dir", "port", "user", "database", "replicas"}
PGBACKREST_KEYS = {"status_file", "max_age_hours"}


def _strings(path: Path, data: dict[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{path}: {key}: expected a list of strings")
    return tuple(value)


def load_config(path: Path | None) -> AgentConfig:
    if path is None:
        return AgentConfig()
    data = load_structured(path)
    unknown = sorted(set(data) - KNOWN_KEYS)
    if unknown:
        raise ConfigError(f"{path}: {unknown[0]}: unknown key (known: "
                          f"{', '.join(sorted(KNOWN_KEYS))})")
    labels = data.get("labels", {})
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise ConfigError(f"{path}: labels: expected a mapping of strings")
    web = data.get("web_config")
    compliance = data.get("compliance_file")
    aide = data.get("aide_status_file")
    if aide is not None and (not isinstance(aide, str) or not aide.startswith("/")):
        raise ConfigError(f"{path}: aide_status_file: expected an absolute file path")
    history = data.get("scheduler_history")
    if history is not None and not isinstance(history, str):
        raise ConfigError(f"{path}: scheduler_history: expected the path of the history database")
    disabled = data.get("disabled_units_dir", str(DISABLED_DIR))
    if not isinstance(disabled, str) or not disabled.startswith("/"):
        raise ConfigError(f"{path}: disabled_units_dir: expected an absolute directory path")
    postgresql = _postgresql(path, data.get("postgresql"))
    status_file, max_age = _pgbackrest(path, data.get("pgbackrest"))
    return AgentConfig(
        web_config=Path(web) if web else None,
        postgresql=postgresql,
        pgbackrest_status=status_file,
        backup_max_age_hours=max_age,
        units=_strings(path, data, "units"),
        disabled_units_dir=Path(disabled),
        certificates=tuple(Path(p) for p in _strings(path, data, "certificates")),
        compliance_file=Path(compliance) if compliance else None,
        aide_status_file=Path(aide) if aide else None,
        scheduler_history=Path(history) if history else None,
        extra_labels=dict(labels),
    )


def _postgresql(path: Path, raw: object) -> PostgresSettings | None:
    """`postgresql: {socket_dir, port, user, database, replicas}` (all optional) on database
    hosts; `replicas` are the members that should stream from this one when it leads."""
    if raw is None or raw is False:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: postgresql: expected a mapping "
                          f"({', '.join(sorted(POSTGRES_KEYS))})")
    for key in sorted(set(raw) - POSTGRES_KEYS):
        raise ConfigError(f"{path}: postgresql.{key}: unknown key")
    port = raw.get("port", PostgresSettings.port)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ConfigError(f"{path}: postgresql.port: expected a port number (got {port!r})")
    for key in ("socket_dir", "user", "database"):
        if key in raw and not isinstance(raw[key], str):
            raise ConfigError(f"{path}: postgresql.{key}: expected a string")
    replicas = raw.get("replicas", [])
    if not isinstance(replicas, list) or not all(isinstance(r, str) for r in replicas):
        raise ConfigError(f"{path}: postgresql.replicas: expected a list of member names")
    defaults = PostgresSettings()
    return PostgresSettings(raw.get("socket_dir", defaults.socket_dir), port,
                            raw.get("user", defaults.user), raw.get("database", defaults.database),
                            tuple(replicas))


def _pgbackrest(path: Path, raw: object) -> tuple[Path | None, float | None]:
    """`pgbackrest: {status_file, max_age_hours}` on backup hosts."""
    if raw is None:
        return None, None
    if not isinstance(raw, dict) or not isinstance(raw.get("status_file"), str):
        raise ConfigError(f"{path}: pgbackrest.status_file: expected the status file's path")
    for key in sorted(set(raw) - PGBACKREST_KEYS):
        raise ConfigError(f"{path}: pgbackrest.{key}: unknown key")
    age = raw.get("max_age_hours")
    if age is not None and (not isinstance(age, int | float) or isinstance(age, bool)
                            or age <= 0):
        raise ConfigError(f"{path}: pgbackrest.max_age_hours: expected a positive number")
    return Path(raw["status_file"]), None if age is None else float(age)
