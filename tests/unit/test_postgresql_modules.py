"""roles/postgresql's modules share their psql through the role's module_utils/: Ansible
finds it (a role's module_utils/ is on the module_utils path) and both modules call psql the
way they did. Run here by ansible-playbook on localhost, with a stand-in `runuser` on PATH
that records its arguments and answers like psql."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
    bin_dir, log = tmp_path / "bin", tmp_path / "runuser.log"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "runuser").write_text(RUNUSER.format(log=log, fail=tmp_path / "fail"))
    (bin_dir / "runuser").chmod(0o755)
    if fail:
        (tmp_path / "fail").touch()
    (tmp_path / "play.yml").write_text("- hosts: localhost\n  gather_facts: false\n"
                                       "  roles: [pg]\n")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "ANSIBLE_HOME": str(tmp_path / "home"), "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_PYTHON_INTERPRETER": sys.executable}
    done = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-c", "local",
                           "-i", "localhost,", "play.yml"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=240)
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
