"""The schema of `site:` in group_vars/all/site.yml (pydantic, strict about unknown keys)."""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from scheduler import spec as sched
from scheduler.cron import CronError
from scheduler.cron import parse as parse_cron

NAME = r"^[a-z][a-z0-9_-]{0,30}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


INTERNET = ipaddress.IPv4Network("0.0.0.0/0")


class ZoneSpec(Strict):
    """A zone. An unmanaged zone (no hosts of ours) may be the internet: `cidr: any` or
    0.0.0.0/0, standing for every address outside the site's other zones."""

    cidr: ipaddress.IPv4Network
    purpose: str = Field(min_length=1)
    managed: bool = True

    @field_validator("cidr", mode="before")
    @classmethod
    def _any_is_everything(cls, value: object) -> object:
        return "0.0.0.0/0" if isinstance(value, str) and value.strip().lower() == "any" else value

    @model_validator(mode="after")
    def _internet_is_unmanaged(self) -> ZoneSpec:
        if self.managed and self.cidr == INTERNET:
            raise ValueError("only an unmanaged zone (managed: false) may be the internet "
                             "(any, 0.0.0.0/0); a managed zone needs its own subnet")
        return self


class RouterSpec(Strict):
    name: str = Field(default="fw", pattern=NAME)
    host_number: int = Field(default=254, ge=1, le=254)


class ControlSpec(Strict):
    address: ipaddress.IPv4Address
    mirror_port: int = Field(default=3142, ge=1, le=65535)


class MirrorSpec(Strict):
    """Where the offline mirror is served on a real site: a host of the site in the control
    node's zone, which `opsctl mirror push` fills and the mirror_server role serves.
    Without `site.mirror` the control node serves it (`control.mirror_port`), as the lab does."""

    host: str = Field(min_length=1)
    port: int = Field(default=3142, ge=1, le=65535)
    path: str = Field(default="/srv/opsctl-mirror", pattern=r"^/[A-Za-z0-9._/-]*[A-Za-z0-9._-]$")

    @field_validator("path")
    @classmethod
    def _no_dot_parts(cls, value: str) -> str:
        if any(part in (".", "..") for part in value.split("/")):
            raise ValueError("must be an absolute path without . or .. parts")
        return value


class ExternalSpec(Strict):
    """A network outside the site that flows may name (a province's uplink to the national
    node's access gateway, say). The site's hosts never live in it."""

    cidr: ipaddress.IPv4Network
    purpose: str = Field(min_length=1)


class NationalSpec(Strict):
    """Where a province's Prometheus pushes its alerts and aggregates (docs/national-view.md):
    the national node's access gateway, over the province's uplink. The credential is the
    site's secret `national_uplink`, a copy of the one the national node made for it."""

    url: str = Field(pattern=r"^https://[^\s/?#]+/\S*$")
    # the national node's CA (PEM) on the control node; relative paths are from the site
    # directory
    ca_file: str = Field(min_length=1)


class FlowSpec(Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(pattern=NAME)
    from_: list[str] = Field(alias="from", min_length=1)
    to: list[str] = Field(min_length=1)
    ports: list[int] = Field(min_length=1)
    proto: Literal["tcp", "udp"] = "tcp"
    why: str = Field(min_length=1)

    @field_validator("from_", "to", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("ports")
    @classmethod
    def _valid_ports(cls, ports: list[int]) -> list[int]:
        for port in ports:
            if not 1 <= port <= 65535:
                raise ValueError(f"port {port} is outside 1-65535")
        return ports


# --- components (opsctl deploy) ---------------------------------------------------------
# The platform's components as data: what runs where, from which artifact, how it is
# started and checked. Rules that need the inventory live in model.py (_component_problems).

VERSION = r"^[0-9A-Za-z][0-9A-Za-z.+~-]{0,63}$"
SHA256 = r"^[0-9a-f]{64}$"


class ReleaseSpec(Strict):
    """One version's artifact: a tarball at a path relative to the repository, or a URL."""

    artifact: str = Field(min_length=1)
    sha256: str = Field(pattern=SHA256)


class HealthSpec(Strict):
    path: str = Field(default="/healthz", pattern=r"^/")
    status: int = Field(default=200, ge=100, le=599)
    timeout: float = Field(default=30, gt=0, le=600)


class ComponentSpec(Strict):
    version: str = Field(pattern=VERSION)  # what a first converge installs
    group: str = Field(pattern=NAME)
    port: int = Field(ge=1024, le=65535)
    # Where the component serves /metrics for Prometheus, apart from `port` so that the
    # balancer never forwards to them; the prometheus role scrapes it as job <component>.
    metrics_port: int | None = Field(default=None, ge=1024, le=65535)
    location: str = Field(pattern=r"^/[a-z0-9/_-]*/$")  # its path prefix at the balancer
    unit: str = Field(default="component.service.j2", pattern=r"^[A-Za-z0-9_.-]+\.j2$")
    health: HealthSpec = HealthSpec()
    config: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)
    releases: dict[str, ReleaseSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _metrics_port_is_its_own(self) -> ComponentSpec:
        if self.metrics_port == self.port:
            raise ValueError(f"metrics_port {self.metrics_port} is the component's own port "
                             "(the balancer forwards to it): give metrics a port of their own")
        return self

    @field_validator("releases")
    @classmethod
    def _release_versions(cls, releases: dict[str, ReleaseSpec]) -> dict[str, ReleaseSpec]:
        for version in releases:
            if not re.match(VERSION, version):
                raise ValueError(f"release version {version!r} must match {VERSION}")
        return releases

# --- end components ---------------------------------------------------------------------


class ProvinceSpec(Strict):
    """A province that uploads its incremental data to this node's access gateway (平台接入),
    and how often it is expected to: ProvinceUploadSilent fires when its last upload is older
    than `upload_interval_hours` (the gateway exports the interval next to the upload times)."""

    title: str = ""
    upload_interval_hours: float = Field(gt=0, le=24 * 366)
Duration = float | int | str


def _seconds(value: Duration) -> float:
    return sched.parse_duration(value)


class BackoffSpec(Strict):
    base: Duration = sched.Backoff.base
    max: Duration = sched.Backoff.max

    @field_validator("base", "max")
    @classmethod
    def _duration(cls, value: Duration) -> Duration:
        _seconds(value)
        return value

    @model_validator(mode="after")
    def _ordered(self) -> BackoffSpec:
        if _seconds(self.max) < _seconds(self.base):
            raise ValueError(f"max {self.max} is less than base {self.base}")
        return self


_JOB = sched.JobSpec  # the one definition of a job: its names, choices and defaults


class JobSpec(Strict):
    """A scheduled job as site.yml holds it: scheduler/spec.py's job (the one definition; the
    hosts interpret it with the stdlib only) with `group` required. Every pattern, choice,
    limit and default below is the scheduler's; `to_scheduler` is the scheduler's own parse,
    and tests/unit/test_scheduler_site.py ties the keys and defaults."""

    name: str = Field(pattern=sched.NAME.pattern)
    description: str = _JOB.description
    group: str = Field(min_length=1)  # a group, a zone or `all`: the hosts it runs on
    command: list[str] | None = Field(default=None, min_length=1)
    action: str | None = None
    schedule: str
    timezone: str = _JOB.timezone
    timeout: Duration = _JOB.timeout
    retries: int = Field(default=_JOB.retries, ge=0, le=sched.RETRIES_MAX)
    backoff: BackoffSpec = BackoffSpec()
    jitter: Duration = _JOB.jitter
    concurrency: Literal[sched.CONCURRENCY] = _JOB.concurrency
    missed: Literal[sched.MISSED] = _JOB.missed
    singleton: Literal[sched.SINGLETON] | None = None
    # The account the job runs as; without it, the scheduler agent's own account.
    user: str | None = Field(default=None, pattern=sched.USER.pattern)
    enabled: bool = _JOB.enabled

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        try:
            parse_cron(value)
        except CronError as exc:
            raise ValueError(f"not a cron expression: {exc}") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("timeout", "jitter")
    @classmethod
    def _duration(cls, value: Duration) -> Duration:
        _seconds(value)
        return value

    @field_validator("action")
    @classmethod
    def _known_action(cls, value: str | None) -> str | None:
        if value is not None and value not in sched.ACTIONS:
            raise ValueError(f"unknown action (known: {', '.join(sorted(sched.ACTIONS))})")
        return value

    @model_validator(mode="after")
    def _command_or_action(self) -> JobSpec:
        if (self.command is None) == (self.action is None):
            raise ValueError("give exactly one of command (argv list) or action")
        return self

    @model_validator(mode="after")
    def _the_scheduler_accepts_it(self) -> JobSpec:
        """What the fields above let through, the host's own check must accept too (a
        `timeout: 0` passes them, and the scheduler refuses it)."""
        problems: list[str] = []
        sched.parse_job(self._as_job(), "job", problems)
        if problems:
            raise ValueError("; ".join(p.removeprefix("job.") for p in problems))
        return self

    def _as_job(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)

    def to_scheduler(self) -> sched.JobSpec:
        problems: list[str] = []
        job = sched.parse_job(self._as_job(), "job", problems)
        assert job is not None, f"validated: {problems}"
        return job


class DatabaseSpec(Strict):
    """The platform's data (roles/postgresql/files/): demo_data seeds a lab's contracts."""

    demo_data: bool = False


class BackupSpec(Strict):
    """The backup policy: the backup role configures pgBackRest from it and
    `opsctl backup verify` judges the repository against it.

    The roles' `site.backup.X | default(V)` fallbacks repeat these defaults for a site.yml
    that leaves X out (Ansible reads site.yml as written, not this model);
    tests/unit/test_one_source.py ties every such fallback to the model's default."""

    stanza: str = Field(default="main", pattern=NAME)
    # Seconds after which a partly filled WAL segment is archived anyway: the RPO bound.
    archive_timeout: int = Field(default=60, ge=10, le=3600)
    # Full backups kept (retention by count); differentials kept per full.
    retention_full: int = Field(default=2, ge=1, le=100)
    retention_diff: int = Field(default=7, ge=1, le=100)
    compress_type: Literal["zst", "lz4", "gz"] = "zst"
    # `opsctl backup verify` fails when the newest backup is older than this.
    max_age_hours: float = Field(default=26, gt=0)


# --- connection: how opsctl reaches the site's hosts (opsctl/connection.py) -------------
USER = r"^[a-z_][a-z0-9_-]{0,31}$"


class JumpSpec(Strict):
    """The bastion every connection goes through: a host of the site (in the control node's
    zone) or a machine outside the site, named by address."""

    host: str | None = Field(default=None, pattern=NAME)
    address: str | None = Field(default=None, min_length=1)
    # Without it: the site's port for a host of the site, 22 for an address.
    port: int | None = Field(default=None, ge=1, le=65535)
    user: str | None = Field(default=None, pattern=USER)

    @model_validator(mode="after")
    def _host_or_address(self) -> JumpSpec:
        if (self.host is None) == (self.address is None):
            raise ValueError("give exactly one of host (a host of the site) or address")
        return self


class BecomeSpec(Strict):
    """sudo for a login user other than root. The password is never written in site.yml:
    `none` (NOPASSWD), `secrets` (the site's root-only secrets: USER-password, the file the
    hardening role keeps the admin's password in), `file` (a path, mode 0600) or `prompt`."""

    password: Literal["none", "secrets", "file", "prompt"] = "none"
    file: str | None = None

    @model_validator(mode="after")
    def _file_given(self) -> BecomeSpec:
        if (self.password == "file") != (self.file is not None):
            raise ValueError("file is required with password: file, and only then")
        return self


class ConnectionSpec(Strict):
    """How the control node reaches the hosts: the lab (`via: lab`, written by `opsctl lab
    up`) or SSH as described here. Inventory variables ansible_host, ansible_port and
    ansible_user, and opsctl_mgmt_address, override per host."""

    via: Literal["ssh", "lab"] = "ssh"
    user: str = Field(default="root", pattern=USER)
    port: int = Field(default=22, ge=1, le=65535)
    # On the control node; relative paths are from the site directory. The admin key is
    # the public key the base role authorises for the login user (identity_file + .pub).
    identity_file: str = "~/.ssh/id_ed25519"
    admin_pubkey: str | None = None
    become: BecomeSpec = BecomeSpec()
    jump: JumpSpec | None = None
    # The site's pinned host keys; without it, the site's own file in opsctl's state.
    known_hosts: str | None = None
    connect_timeout: int = Field(default=15, ge=1, le=300)


class SiteSpec(Strict):
    name: str = Field(pattern=NAME)
    title: str = ""
    protection_level: Literal[2, 3] = 3
    zones: dict[str, ZoneSpec] = Field(min_length=1)
    router: RouterSpec = RouterSpec()
    control: ControlSpec
    mirror: MirrorSpec | None = None
    # The monitoring agents' port (roles monitor_agent, prometheus; monitor's --listen default
    # repeats it, tied by tests/unit/test_one_source.py).
    agent_port: int = Field(default=9110, ge=1, le=65535)
    groups: dict[str, str] = Field(default_factory=dict)
    flows: list[FlowSpec] = Field(default_factory=list)
    external: dict[str, ExternalSpec] = Field(default_factory=dict)
    forks: int | None = Field(default=None, ge=1, le=200)
    connection: ConnectionSpec = ConnectionSpec()
    # --- components (opsctl deploy) ---
    components: dict[str, ComponentSpec] = Field(default_factory=dict)
    jobs: list[JobSpec] = Field(default_factory=list)
    # The provinces the access gateway expects uploads from, by site name (the gateway's
    # own PROVINCE pattern is NAME: tests/unit/test_one_source.py).
    provinces: dict[str, ProvinceSpec] = Field(default_factory=dict)
    # A province: the national node it pushes its metrics to.
    national: NationalSpec | None = None
    backup: BackupSpec = BackupSpec()
    database: DatabaseSpec = DatabaseSpec()

    @field_validator("zones")
    @classmethod
    def _zone_names(cls, zones: dict[str, ZoneSpec]) -> dict[str, ZoneSpec]:
        for name in zones:
            if not re.match(NAME, name):
                raise ValueError(f"zone name {name!r} must match {NAME}")
        return zones

    @field_validator("provinces")
    @classmethod
    def _province_names(cls, provinces: dict[str, ProvinceSpec]) -> dict[str, ProvinceSpec]:
        for name in provinces:
            if not re.match(NAME, name):
                raise ValueError(f"province name {name!r} must match {NAME}")
        return provinces
