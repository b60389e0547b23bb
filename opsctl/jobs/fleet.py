"""Jobs run now, and their history read, on the hosts: one command per host through the
transport, answered in JSON by the scheduler's own CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from opsctl.errors import NotFound
from opsctl.jobs.catalog import find_job
from opsctl.roles import role_default
from opsctl.site.model import Site
from opsctl.transport import HostError, Transport

# How a host runs the scheduler's CLI, on the files its service uses: where the
# scheduler_agent role installs the package, its jobs file and its history (as the role's
# opsctl-scheduler.service names them), read from the role's defaults.
REMOTE_SCHEDULER = [
    "env", f"PYTHONPATH={role_default('scheduler_agent', 'scheduler_agent_home')}",
    "python3", "-m", "scheduler",
    "--jobs", f"{role_default('scheduler_agent', 'scheduler_agent_config_dir')}/jobs.json",
    "--history", f"{role_default('scheduler_agent', 'scheduler_agent_state_dir')}/history.db",
]


@dataclass
class HostAnswer:
    host: str
    ok: bool
    data: Any = None
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"host": self.host, "ok": self.ok, "data": self.data, "error": self.error}


@dataclass
class FleetAnswer:
    answers: list[HostAnswer] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(a.ok for a in self.answers)

    def as_dict(self) -> list[dict[str, Any]]:
        return [a.as_dict() for a in self.answers]


def _ask(hosts: list[str], argv: list[str], timeout: float, transport: Transport,
         judge: Callable[[int, Any], bool]) -> FleetAnswer:
    def one(host: str) -> HostAnswer:
        try:
            done = transport.run(host, argv, timeout=timeout)
        except HostError as exc:  # unreachable, a changed key, sudo refused: not asked
            return HostAnswer(host, False, error=str(exc))
        code, out = done.rc, (done.stdout or done.stderr).strip()
        try:
            data = json.loads(out)
        except json.JSONDecodeError:
            return HostAnswer(host, False, error=f"exit {code}: {out[-300:]}")
        return HostAnswer(host, judge(code, data), data)

    with ThreadPoolExecutor(max_workers=max(1, min(16, len(hosts)))) as pool:
        return FleetAnswer(list(pool.map(one, hosts)))


def run_job(site: Site, name: str, transport: Transport,
            hosts: list[str] | None = None) -> FleetAnswer:
    """Run a job now on each host of its group (or the hosts given), in parallel.
    A `singleton: cluster` job still runs on one of them only: the others report skipped."""
    job = find_job(site, name)
    targets = hosts or list(job.hosts)
    unknown = sorted(set(targets) - set(job.hosts))
    if unknown:
        raise NotFound(f"job {name} does not run on {', '.join(unknown)} "
                       f"(its hosts: {', '.join(job.hosts)})")
    timeout = job.spec.timeout * (job.spec.retries + 1) + 120
    return _ask(targets, [*REMOTE_SCHEDULER, "run", name], timeout, transport,
                lambda code, data: code == 0 or data.get("outcome") == "skipped")


def job_history(site: Site, name: str | None, transport: Transport,
                limit: int = 20) -> FleetAnswer:
    """Recent runs from the hosts that run the job (or every host that runs any job)."""
    if name is not None:
        hosts = list(find_job(site, name).hosts)
    else:
        hosts = [h for h in site.hosts if any(h in j.hosts for j in site.jobs)]
    argv = [*REMOTE_SCHEDULER, "history", *([name] if name else []), "--json",
            "--limit", str(limit)]
    return _ask(hosts, argv, 30, transport, lambda code, _: code == 0)
