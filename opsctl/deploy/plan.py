"""The pure part of a rolling deploy: which hosts in which order, and what a health result
means. No hosts, no SSH: the engine gathers, these decide."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from opsctl.errors import OpsctlError


class DeployRefused(OpsctlError):
    """The deploy cannot start (bad input or a host not fit for it); nothing was changed."""

    exit_code = 2


class DeployFailed(OpsctlError):
    """The deploy started and stopped: a host failed its health check (rolled back) or broke."""

    exit_code = 1


@dataclass(frozen=True)
class HostRelease:
    """What a host runs of one component (gathered over SSH)."""

    host: str
    current: str | None
    previous: str | None
    releases: tuple[str, ...]
    active: bool

    def as_dict(self) -> dict:
        return {"host": self.host, "current": self.current, "previous": self.previous,
                "releases": list(self.releases), "active": self.active}


def rolling_plan(hosts: list[str], current: dict[str, str | None], target: str,
                 batch: int = 1) -> list[list[str]]:
    """Batches of at most `batch` hosts, in inventory order, of the hosts not on `target`.

    Refuses when every host already runs it, and when a batch would take every host of the
    group out of the balancer at once.
    """
    if batch < 1:
        raise DeployRefused(f"--batch {batch}: must be at least 1")
    todo = [h for h in hosts if current.get(h) != target]
    if not todo:
        raise DeployRefused(f"version {target} is already running on every host "
                            f"({', '.join(hosts)}); nothing to do")
    if batch >= len(hosts) and len(hosts) > 1:
        raise DeployRefused(f"--batch {batch} would drain all {len(hosts)} hosts at once; "
                            f"use at most {len(hosts) - 1}")
    return [todo[i:i + batch] for i in range(0, len(todo), batch)]


class Next(Enum):
    RESTORE = "restore"  # healthy: put it back in the balancer, go on
    ROLL_BACK = "roll back"  # unhealthy: previous release, put it back, stop


def after_health(healthy: dict[str, bool]) -> Next:
    """A batch goes on only when every host in it passed its health check."""
    return Next.RESTORE if healthy and all(healthy.values()) else Next.ROLL_BACK


def rollback_target(releases: list[HostRelease]) -> str:
    """The one version `opsctl rollback` returns to: the hosts' common previous release."""
    previous = {r.previous for r in releases if r.previous}
    if not previous:
        raise DeployRefused("no host has a previous release to roll back to")
    if len(previous) > 1:
        raise DeployRefused("hosts have different previous releases ("
                            f"{', '.join(sorted(previous))}): deploy the one you want")
    return previous.pop()


def prunable(newest_first: list[str], keep: set[str], count: int = 3) -> list[str]:
    """Releases to delete so that `count` remain: never those in `keep` (current and
    previous), otherwise the most recently installed stay."""
    kept = [r for r in newest_first if r in keep]
    for r in newest_first:
        if len(kept) >= count:
            break
        if r not in kept:
            kept.append(r)
    return [r for r in newest_first if r not in kept]


@dataclass(frozen=True)
class DependencyState:
    """What a dependency of the component being deployed runs on one host (gathered)."""

    component: str
    host: str
    current: str | None
    healthy: bool
    detail: str = ""


def dependency_problem(component: str, states: list[DependencyState]) -> str | None:
    """Why a deploy of `component` must not start, or None: every dependency must be
    installed and healthy on every host of its group (`opsctl deploy` refuses, exit 2)."""
    bad = [s for s in states if s.current is None or not s.healthy]
    if not bad:
        return None
    parts = [f"{s.component} on {s.host}: " + ("not installed" if s.current is None
                                               else f"unhealthy ({s.detail})") for s in bad]
    deps = sorted({s.component for s in bad})
    return (f"{component} depends on {', '.join(deps)}, which is not deployed and healthy "
            f"({'; '.join(parts)}): deploy or repair it first; nothing was changed")
