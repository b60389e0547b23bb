"""Where a run's time went: tasks cost from their start to the next boundary, roles add up
their tasks, hosts' own module time beside it; `opsctl runs profile` shows it from a run's
kept events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from opsctl.apply import history
from opsctl.apply.profile import load_events, profile
from opsctl.cli.main import cli
from opsctl.errors import NotFound

T0 = datetime(2026, 12, 6, 11, 0, tzinfo=UTC)
_counter = iter(range(1, 10_000))


def event(kind: str, at: float, **data) -> dict:
    return {"event": kind, "counter": next(_counter),
            "created": (T0 + timedelta(seconds=at)).isoformat(), "event_data": data}


def task(at: float, name: str, role: str = "", play: str = "Base", uuid: str = "") -> dict:
    return event("playbook_on_task_start", at, task=name, role=role, play=play,
                 task_uuid=uuid or name, task_path=f"/x/roles/{role}/tasks/main.yml:3")


def result(at: float, uuid: str, host: str, duration: float, changed: bool = False) -> dict:
    return event("runner_on_ok", at, task_uuid=uuid, host=host, duration=duration,
                 res={"changed": changed})


def run_events() -> list[dict]:
    return [
        event("playbook_on_start", 0.0),
        event("playbook_on_play_start", 1.0, play="Base"),
        task(1.5, "Gathering Facts"),
        result(3.0, "Gathering Facts", "app1", 1.4),
        task(3.5, "Install packages", role="base", uuid="pk"),
        result(4.0, "pk", "app1", 0.4),
        result(6.0, "pk", "db1", 2.4, changed=True),
        task(6.5, "Write config", role="base", uuid="cf"),
        result(7.0, "cf", "app1", 0.3),
        event("playbook_on_play_start", 7.5, play="Database"),
        task(8.0, "Start postgres", role="postgresql", play="Database", uuid="pg"),
        result(10.0, "pg", "db1", 1.9),
        event("playbook_on_handler_task_start", 10.5, task="Restart", role="base",
              play="Database", task_uuid="rs", task_path="/x/roles/base/handlers/main.yml:1"),
        result(11.0, "rs", "db1", 0.4, changed=True),
        event("playbook_on_stats", 12.0),
    ]


def test_a_task_costs_until_the_next_boundary_and_roles_add_up():
    found = profile(reversed(run_events()))  # order comes from the events' counters
    assert found.seconds == 12.0 and found.before_first_task == 1.5
    cost = {t.task: t.seconds for t in found.tasks}
    # install: to the next task; config: to the next play's start; the handler: to the recap
    assert cost == {"Gathering Facts": 2.0, "Install packages": 3.0, "Write config": 1.0,
                    "Start postgres": 2.5, "Restart": 1.5}
    roles = {r.role: r for r in found.roles()}
    assert roles["base"].seconds == 5.5 and roles["base"].tasks == 3
    assert roles["base"].host_seconds == pytest.approx(3.5) and roles["base"].changed == 2
    assert roles["play: Base"].tasks == 1  # facts belong to their play
    assert [r.role for r in found.roles()][0] == "base"  # dearest first
    assert [t.task for t in found.dearest(2)] == ["Install packages", "Start postgres"]
    assert found.tasks[1].path == "roles/base/tasks/main.yml:3"


def test_runs_profile_reads_a_kept_run(state_dir):
    record = history.RunRecord(id="20261206T110000.000Z-abcd", site="reference",
                               started=T0.isoformat(), request={}, result="ok", hosts={})
    history.save(record)
    events = history.run_dir(record.id) / "artifacts" / "ansible" / "job_events"
    events.mkdir(parents=True)
    for e in run_events():
        (events / f"{e['counter']}-x.json").write_text(json.dumps(e))
    done = CliRunner().invoke(cli, ["runs", "profile", "last", "-o", "json", "--top", "1"])
    assert done.exit_code == 0, done.output
    doc = json.loads(done.output)
    assert doc["run"] == record.id and doc["tasks"] == 5
    assert doc["roles"][0] == {"role": "base", "tasks": 3, "seconds": 5.5,
                               "host_seconds": 3.5, "changed": 2}
    assert [t["task"] for t in doc["dearest_tasks"]] == ["Install packages"]
    table = CliRunner().invoke(cli, ["runs", "profile"])
    assert table.exit_code == 0 and "Install packages" in table.output


def test_a_run_without_events_says_so(tmp_path):
    with pytest.raises(NotFound, match="no job events"):
        load_events(tmp_path)
