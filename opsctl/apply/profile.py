"""Where an apply's time went, from ansible-runner's job events (pure but `load_events`).

A task costs what the run spends on it: from its start to the next task's (or play's, or the
recap's) start. That includes the strategy's own work between tasks (templating the next
task, waiting for the slowest host), which is what a no-change apply pays whatever the hosts
do; the hosts' own time (`host_seconds`, the sum of each host's module run) is beside it.
A role costs the sum of its tasks; tasks outside roles (fact gathering, a play's own tasks)
are under their play's name.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from opsctl.errors import NotFound

TASK_STARTS = ("playbook_on_task_start", "playbook_on_handler_task_start")
# events that end the task before them
BOUNDARIES = (*TASK_STARTS, "playbook_on_play_start", "playbook_on_stats")
HOST_RESULTS = ("runner_on_ok", "runner_on_failed", "runner_on_skipped",
                "runner_on_unreachable")


@dataclass
class TaskCost:
    play: str
    role: str  # the role, or "play: NAME" for a task of the play itself
    task: str
    path: str  # roles/x/tasks/main.yml:12
    seconds: float = 0.0
    host_seconds: float = 0.0
    hosts: int = 0
    changed: int = 0


@dataclass(frozen=True)
class RoleCost:
    role: str
    tasks: int
    seconds: float
    host_seconds: float
    changed: int


@dataclass
class RunProfile:
    seconds: float  # first event to the recap
    before_first_task: float  # start-up: inventory, connection plugin, first play
    tasks: list[TaskCost] = field(default_factory=list)

    def roles(self) -> list[RoleCost]:
        """Roles by cost, dearest first."""
        grouped: dict[str, list[TaskCost]] = {}
        for t in self.tasks:
            grouped.setdefault(t.role, []).append(t)
        costs = [RoleCost(role, len(ts), round(sum(t.seconds for t in ts), 2),
                          round(sum(t.host_seconds for t in ts), 2),
                          sum(t.changed for t in ts)) for role, ts in grouped.items()]
        return sorted(costs, key=lambda r: -r.seconds)

    def dearest(self, top: int) -> list[TaskCost]:
        return sorted(self.tasks, key=lambda t: -t.seconds)[:top]

    def as_dict(self, top: int = 20) -> dict[str, Any]:
        return {"seconds": self.seconds, "before_first_task": self.before_first_task,
                "tasks": len(self.tasks),
                "roles": [asdict(r) for r in self.roles()],
                "dearest_tasks": [asdict(t) for t in self.dearest(top)]}


def _when(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["created"]).timestamp()


def _short_path(path: str) -> str:
    marker = "/roles/"
    return path[path.index(marker) + 1:] if marker in path else path.rsplit("/", 1)[-1]


def profile(events: Iterable[dict[str, Any]]) -> RunProfile:
    """The run's cost by task, from its events in any order (they carry their counter)."""
    ordered = sorted((e for e in events if "created" in e), key=lambda e: e.get("counter", 0))
    if not ordered:
        return RunProfile(0.0, 0.0)
    first = _when(ordered[0])
    tasks: list[TaskCost] = []
    current: TaskCost | None = None
    started = first
    by_uuid: dict[str, TaskCost] = {}
    for event in ordered:
        kind, data = event.get("event", ""), event.get("event_data") or {}
        if kind in BOUNDARIES and current is not None:
            current.seconds = round(current.seconds + _when(event) - started, 3)
            current = None
        if kind in TASK_STARTS:
            role = data.get("role") or f"play: {data.get('play', '')}"
            current = TaskCost(data.get("play", ""), role, data.get("task", ""),
                               _short_path(data.get("task_path", "")))
            started = _when(event)
            tasks.append(current)
            by_uuid[data.get("task_uuid", "")] = current
        elif kind in HOST_RESULTS:
            task = by_uuid.get(data.get("task_uuid", ""))
            if task is not None:
                task.hosts += 1
                task.host_seconds = round(task.host_seconds + float(data.get("duration") or 0),
                                          3)
                task.changed += bool((data.get("res") or {}).get("changed"))
    last = _when(ordered[-1])
    if current is not None:
        current.seconds = round(current.seconds + last - started, 3)
    first_task = next((_when(e) for e in ordered if e.get("event") in TASK_STARTS), last)
    return RunProfile(round(last - first, 2), round(first_task - first, 2), tasks)


def load_events(run_dir: Path) -> list[dict[str, Any]]:
    """A run's job events as ansible-runner kept them (artifacts/ansible/job_events)."""
    events_dir = run_dir / "artifacts" / "ansible" / "job_events"
    files = sorted(events_dir.glob("*.json"))
    if not files:
        raise NotFound(f"{events_dir}: no job events (a run that did not reach Ansible, or "
                       "whose artifacts were removed)")
    return [json.loads(p.read_text(encoding="utf-8")) for p in files]
