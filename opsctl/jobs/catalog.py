"""The site's jobs as the control node lists them: hosts, schedule, next fire time (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opsctl.errors import NotFound
from opsctl.site.model import Job, Site
from scheduler.cron import next_fire


@dataclass(frozen=True)
class JobRow:
    name: str
    group: str
    hosts: tuple[str, ...]
    schedule: str
    timezone: str
    next_fire: str | None  # ISO 8601 in the job's time zone; None when disabled
    what: str
    singleton: str | None
    enabled: bool

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "group": self.group, "hosts": list(self.hosts),
                "schedule": self.schedule, "timezone": self.timezone,
                "next_fire": self.next_fire, "what": self.what,
                "singleton": self.singleton, "enabled": self.enabled}


def list_jobs(site: Site, now: datetime) -> list[JobRow]:
    """Every job of the site with its hosts and next fire time after `now` (aware)."""
    rows = []
    for job in site.jobs:
        spec = job.spec
        fire = next_fire(spec.cron, now, spec.tz).isoformat() if spec.enabled else None
        what = f"action {spec.action}" if spec.action else " ".join(spec.command or ())
        rows.append(JobRow(spec.name, job.group, job.hosts, spec.schedule, spec.timezone,
                           fire, what, spec.singleton, spec.enabled))
    return rows


def find_job(site: Site, name: str) -> Job:
    for job in site.jobs:
        if job.name == name:
            return job
    raise NotFound(f"no job {name!r} in site {site.name} "
                   f"(jobs: {', '.join(j.name for j in site.jobs) or 'none'})")
