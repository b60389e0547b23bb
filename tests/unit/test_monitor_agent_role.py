"""The monitor_agent role's AIDE status without a host: the first status is written once, where
AIDE and the status units are installed and no status exists yet, by a module (no shell), after
the timer is enabled and again after the hardening role installs AIDE; the guard is evaluated
with Jinja2 against the stat results of a fresh, a converged and an AIDE-less host."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "monitor_agent"
FIRST = "aide_status.yml"


def load(path: Path) -> list[dict]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def role_vars() -> dict:
    return yaml.safe_load((ROLE / "vars" / "main.yml").read_text(encoding="utf-8"))


def first_status_tasks() -> tuple[dict, dict]:
    look, start = load(ROLE / "tasks" / FIRST)
    return look, start


def test_the_first_status_is_started_by_the_systemd_module_once() -> None:
    look, start = first_status_tasks()
    assert start["ansible.builtin.systemd_service"] == {"name": "opsctl-aide-status.service",
                                                        "state": "started"}
    assert look["ansible.builtin.stat"]["path"] == "{{ item }}"
    assert look["loop"] == ["{{ monitor_agent_aide_binary }}",
                            "/etc/systemd/system/opsctl-aide-status.service",
                            "{{ monitor_agent_aide_status_dir }}/status.json"]
    for task in (look, start):
        assert {"monitor_agent-aide", "aide_findings_exported"} <= set(task["tags"])
        assert not {"ansible.builtin.command", "ansible.builtin.shell"} & set(task)


def should_start(exists: tuple[bool, bool, bool]) -> bool:
    """The start task's `when` (a list: all must hold) for stat results (binary, unit, status)."""
    look, start = first_status_tasks()
    registered = {look["register"]: {"results": [{"stat": {"exists": e}} for e in exists]}}
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    return all(env.compile_expression(cond)(**registered) for cond in start["when"])


@pytest.mark.parametrize(("exists", "starts"), [
    ((True, True, False), True),   # a fresh host with AIDE: the status now
    ((True, True, True), False),   # converged: a second apply changes nothing
    ((False, True, False), False),  # no AIDE: the service's condition would skip it every time
    ((True, False, False), False),  # the hardening play on a host the agent's role never ran on
])
def test_the_first_status_is_written_only_where_it_is_missing(exists, starts) -> None:
    assert should_start(exists) is starts


def test_the_service_runs_where_the_guard_looks_for_aide() -> None:
    service = (ROLE / "templates" / "opsctl-aide-status.service.j2").read_text()
    assert "ConditionPathExists={{ monitor_agent_aide_binary }}" in service
    assert role_vars()["monitor_agent_aide_binary"] == "/usr/bin/aide"
    installed = next(t for t in load(ROLE / "tasks" / "main.yml")
                     if t["name"] == "Install the AIDE status service and timer")
    assert installed["ansible.builtin.template"]["dest"] == "/etc/systemd/system/{{ item }}"
    assert "opsctl-aide-status.service" in installed["loop"]


def test_the_timer_keeps_its_calendar_alone() -> None:
    """701003c: OnActiveSec fired again and again during a converge; the first status is the
    role's one start instead."""
    timer = (ROLE / "templates" / "opsctl-aide-status.timer.j2").read_text()
    settings = [line.split("=")[0] for line in timer.splitlines()
                if "=" in line and not line.startswith("#")]
    assert [s for s in settings if s.startswith("On")] == ["OnCalendar"]


def test_the_first_status_follows_the_hardening_role_in_one_place() -> None:
    """site.yml runs the agent's role before hardening installs AIDE: the one place that
    writes the first status is a play after the hardening role (a first converge and a site
    that gets the status units later alike), not the role's main tasks (two more tasks on every
    host in every apply)."""
    assert not [t for t in load(ROLE / "tasks" / "main.yml")
                if t.get("ansible.builtin.import_tasks") == FIRST]
    plays = load(ROOT / "playbooks" / "hardening.yml")
    hardening = next(i for i, p in enumerate(plays)
                     if any(r.get("role") == "hardening" for r in p.get("roles", [])))
    after = [t for p in plays[hardening + 1:] for t in p.get("tasks", [])
             if t.get("ansible.builtin.import_role", {}) == {"name": "monitor_agent",
                                                              "tasks_from": "aide_status"}]
    assert len(after) == 1
    assert {"hardening-aide", "monitor_agent-aide"} <= set(after[0]["tags"])
    assert plays[hardening + 1]["hosts"] == "all"
