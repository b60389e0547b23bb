"""ansible-runner events turned into what opsctl shows and records (pure: events in, state out)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# ansible-runner's names for host outcomes.
HOST_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}


@dataclass(frozen=True)
class HostEvent:
    """One task's outcome on one host, as the live view shows it."""

    host: str
    task: str
    status: str  # ok | changed | failed | unreachable | skipped
    message: str = ""


@dataclass
class HostTally:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0

    @property
    def status(self) -> str:
        if self.unreachable:
            return "unreachable"
        if self.failed:
            return "failed"
        return "changed" if self.changed else "ok"


@dataclass
class RunTally:
    """Everything a run learned from its event stream."""

    hosts: dict[str, HostTally] = field(default_factory=dict)
    failures: list[HostEvent] = field(default_factory=list)
    tasks: int = 0
    current_task: str = ""

    def feed(self, event: dict[str, Any]) -> HostEvent | None:
        """Take one event; return the host outcome it carries, if any."""
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        if kind == "playbook_on_task_start":
            self.tasks += 1
            self.current_task = data.get("task", "")
            return None
        if kind == "playbook_on_stats":
            self._take_stats(data)
            return None
        if kind not in HOST_EVENTS or not data.get("host"):
            return None
        host, result = data["host"], data.get("res") or {}
        status = HOST_EVENTS[kind]
        if status == "failed" and data.get("ignore_errors"):
            status = "ok"
        if status == "ok" and result.get("changed"):
            status = "changed"
        outcome = HostEvent(host, data.get("task", ""), status, _message(result))
        tally = self.hosts.setdefault(host, HostTally())
        setattr(tally, status, getattr(tally, status) + 1)
        if status in ("failed", "unreachable"):
            self.failures.append(outcome)
        return outcome

    def _take_stats(self, data: dict[str, Any]) -> None:
        # The recap is authoritative (it counts loops and handlers as Ansible does).
        names = set()
        for key in ("ok", "changed", "failures", "dark", "skipped"):
            names.update((data.get(key) or {}).keys())
        for host in names:
            self.hosts[host] = HostTally(
                ok=(data.get("ok") or {}).get(host, 0),
                changed=(data.get("changed") or {}).get(host, 0),
                failed=(data.get("failures") or {}).get(host, 0),
                unreachable=(data.get("dark") or {}).get(host, 0),
                skipped=(data.get("skipped") or {}).get(host, 0),
            )


def _message(result: dict[str, Any]) -> str:
    # A loop's own message is "One or more items failed": say what the first failed item said.
    for item in result.get("results") or []:
        if isinstance(item, dict) and item.get("failed"):
            found = _message(item)
            if found:
                return found
    for key in ("msg", "stderr", "reason"):
        value = result.get(key)
        if value:
            text = str(value).strip().splitlines()
            return text[-1][:300] if text else ""
    return ""


EventSink = Callable[[HostEvent], None]
