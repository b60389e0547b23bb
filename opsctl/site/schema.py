"""The schema of `site:` in group_vars/all/site.yml (pydantic, strict about unknown keys)."""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

NAME = r"^[a-z][a-z0-9_-]{0,30}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ZoneSpec(Strict):
    cidr: ipaddress.IPv4Network
    purpose: str = Field(min_length=1)
    managed: bool = True


class RouterSpec(Strict):
    name: str = Field(default="fw", pattern=NAME)
    host_number: int = Field(default=254, ge=1, le=254)


class ControlSpec(Strict):
    address: ipaddress.IPv4Address
    mirror_port: int = Field(default=3142, ge=1, le=65535)


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


class BackupSpec(Strict):
    """The backup policy: the backup role configures pgBackRest from it and
    `opsctl backup verify` judges the repository against it."""

    stanza: str = Field(default="main", pattern=NAME)
    # Seconds after which a partly filled WAL segment is archived anyway: the RPO bound.
    archive_timeout: int = Field(default=60, ge=10, le=3600)
    # Full backups kept (retention by count); differentials kept per full.
    retention_full: int = Field(default=2, ge=1, le=100)
    retention_diff: int = Field(default=7, ge=1, le=100)
    compress_type: Literal["zst", "lz4", "gz"] = "zst"
    # `opsctl backup verify` fails when the newest backup is older than this.
    max_age_hours: float = Field(default=26, gt=0)
    # systemd OnCalendar expressions of the schedule on the repository host.
    schedule: dict[Literal["full", "diff", "incr"], str] = Field(default_factory=lambda: {
        "full": "Sun *-*-* 01:00:00", "diff": "Mon..Sat *-*-* 01:00:00",
        "incr": "*-*-* 07,13,19:00:00"})


class SiteSpec(Strict):
    name: str = Field(pattern=NAME)
    title: str = ""
    protection_level: Literal[2, 3] = 3
    zones: dict[str, ZoneSpec] = Field(min_length=1)
    router: RouterSpec = RouterSpec()
    control: ControlSpec
    agent_port: int = Field(default=9110, ge=1, le=65535)
    groups: dict[str, str] = Field(default_factory=dict)
    flows: list[FlowSpec] = Field(default_factory=list)
    forks: int | None = Field(default=None, ge=1, le=200)
    backup: BackupSpec = BackupSpec()

    @field_validator("zones")
    @classmethod
    def _zone_names(cls, zones: dict[str, ZoneSpec]) -> dict[str, ZoneSpec]:
        for name in zones:
            if not re.match(NAME, name):
                raise ValueError(f"zone name {name!r} must match {NAME}")
        return zones
