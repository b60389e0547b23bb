"""The schema of `site:` in group_vars/all/site.yml (pydantic, strict about unknown keys)."""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Literal

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


class ExternalSpec(Strict):
    """A network outside the site that flows may name (a province's uplink to the national
    node's access gateway, say). The site's hosts never live in it."""

    cidr: ipaddress.IPv4Network
    purpose: str = Field(min_length=1)


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
    location: str = Field(pattern=r"^/[a-z0-9/_-]*/$")  # its path prefix at the balancer
    unit: str = Field(default="component.service.j2", pattern=r"^[A-Za-z0-9_.-]+\.j2$")
    health: HealthSpec = HealthSpec()
    config: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)
    releases: dict[str, ReleaseSpec] = Field(min_length=1)

    @field_validator("releases")
    @classmethod
    def _release_versions(cls, releases: dict[str, ReleaseSpec]) -> dict[str, ReleaseSpec]:
        for version in releases:
            if not re.match(VERSION, version):
                raise ValueError(f"release version {version!r} must match {VERSION}")
        return releases

# --- end components ---------------------------------------------------------------------


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
    external: dict[str, ExternalSpec] = Field(default_factory=dict)
    forks: int | None = Field(default=None, ge=1, le=200)
    # --- components (opsctl deploy) ---
    components: dict[str, ComponentSpec] = Field(default_factory=dict)

    @field_validator("zones")
    @classmethod
    def _zone_names(cls, zones: dict[str, ZoneSpec]) -> dict[str, ZoneSpec]:
        for name in zones:
            if not re.match(NAME, name):
                raise ValueError(f"zone name {name!r} must match {NAME}")
        return zones
