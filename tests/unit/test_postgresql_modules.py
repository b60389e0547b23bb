"""roles/postgresql's modules share their psql through the role's module_utils/: Ansible
finds it (a role's module_utils/ is on the module_utils path) and both modules call psql the
way they did. Run here by ansible-playbook on localhost, with a stand-in `runuser` on PATH
that records its arguments and answers like psql."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from local_play import play_on_localhost

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "postgresql"

RUNUSER = """#!/bin/sh
cat > /dev/null
echo "$*" >> "{log}"
[ -e "{fail}" ] && {{ echo "ERROR:  boom" >&2; exit 3; }}
case "$*" in *"-F |"*) echo "t|f|" ;; *) echo "f" ;; esac
"""

TASKS = """
- name: Ensure
  opsctl_pg_ensure:
    database: operational
    check: "SELECT false"
    sql: ["SELECT 1"]
    port: 5433
  register: ensure
- name: Role
  opsctl_pg_role:
    name: app
    password: secret
  register: role
- name: Say what they did
  ansible.builtin.copy:
    content: "{{ {'ensure': ensure.executed, 'role': role.actions} | to_json }}"
    dest: "{{ playbook_dir }}/result.json"
    mode: "0600"
"""


Run = subprocess.CompletedProcess[str]


def play(tmp_path: Path, *, fail: bool = False) -> tuple[Run, list[str]]:
    role = tmp_path / "roles" / "pg"
    (role / "tasks").mkdir(parents=True, exist_ok=True)
    for part in ("library", "module_utils"):
        if not (role / part).exists():
            (role / part).symlink_to(ROLE / part)
    (role / "tasks" / "main.yml").write_text(TASKS)
    log = tmp_path / "runuser.log"
    if fail:
        (tmp_path / "fail").touch()
    done = play_on_localhost(tmp_path, "pg", {
        "runuser": RUNUSER.format(log=log, fail=tmp_path / "fail")})
    return done, log.read_text().splitlines() if log.exists() else []


def test_both_modules_run_psql_through_the_role_module_utils(tmp_path) -> None:
    done, calls = play(tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert json.loads((tmp_path / "result.json").read_text()) == {
        "ensure": ["SELECT 1"], "role": ["password"]}
    ensure = "-u postgres -- psql -X -q -A -t -v ON_ERROR_STOP=1 -p 5433 -d operational -f -"
    role = "-u postgres -- psql -X -q -A -t -F | -v ON_ERROR_STOP=1 -p 5432 -d postgres -f -"
    assert calls == [ensure, ensure, role, role]


def test_a_psql_error_fails_the_task_with_what_psql_said(tmp_path) -> None:
    done, _ = play(tmp_path, fail=True)
    assert done.returncode != 0
    assert "psql on operational: ERROR:  boom" in done.stdout, done.stdout[-3000:]
