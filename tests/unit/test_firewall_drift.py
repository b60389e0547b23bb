"""roles/firewall's opsctl_nft_table: a no-change apply loads the host firewall again when its
rules in force were changed by hand, and leaves it alone otherwise. Run by ansible-playbook
on localhost with a stand-in `nft` on PATH that keeps the "running" table in a file (what
`nft -f` loads is the file's text) and records its arguments."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from local_play import play_on_localhost

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "roles" / "firewall" / "library" / "opsctl_nft_table.py"

NFT = """#!/bin/sh
echo "$*" >> "{log}"
case "$1 $2" in
  "-s list") [ -e "{running}" ] || {{ echo "No such file or directory" >&2; exit 1; }}
             cat "{running}" ;;
  "-f "*) cp "$2" "{running}" ;;
esac
"""

TASKS = """
- name: First apply (no record yet)
  opsctl_nft_table: &table
    path: "{{ playbook_dir }}/nftables.conf"
    table: opsctl_host
    state_file: "{{ playbook_dir }}/state/opsctl_host.json"
  register: first
- name: No-change apply
  opsctl_nft_table: *table
  register: second
- name: A rule added by hand
  ansible.builtin.shell: echo 'tcp dport 4444 accept' >> {{ playbook_dir }}/running
  changed_when: true
- name: Apply after the hand edit, in check mode
  opsctl_nft_table: *table
  check_mode: true
  register: checked
- name: Apply after the hand edit
  opsctl_nft_table: *table
  register: repaired
- name: The table deleted by hand
  ansible.builtin.file:
    path: "{{ playbook_dir }}/running"
    state: absent
- name: Apply after the deletion
  opsctl_nft_table: *table
  register: reloaded
- name: The file changed
  ansible.builtin.copy:
    content: "table inet opsctl_host {{ '{' }} tcp dport 22 accept {{ '}' }}\\n"
    dest: "{{ playbook_dir }}/nftables.conf"
    mode: "0644"
- name: Apply after the file changed
  opsctl_nft_table: *table
  register: newfile
- name: Say what each did
  ansible.builtin.copy:
    content: "{{ [first, second, checked, repaired, reloaded, newfile]
                 | map('dict2items') | map('selectattr', 'key', 'in', ['changed', 'reason'])
                 | map('items2dict') | list | to_json }}"
    dest: "{{ playbook_dir }}/result.json"
    mode: "0600"
"""


def test_a_hand_edit_a_deleted_table_and_a_new_file_are_loaded_and_nothing_else(tmp_path) -> None:
    role = tmp_path / "roles" / "fw"
    (role / "tasks").mkdir(parents=True)
    (role / "library").symlink_to(MODULE.parent)
    (role / "tasks" / "main.yml").write_text(TASKS)
    (tmp_path / "nftables.conf").write_text("table inet opsctl_host { policy drop }\n")
    log, running = tmp_path / "nft.log", tmp_path / "running"
    done = play_on_localhost(tmp_path, "fw", {"nft": NFT.format(log=log, running=running)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    results = json.loads((tmp_path / "result.json").read_text())
    assert results == [
        {"changed": True, "reason": "no record of the last load"},
        {"changed": False, "reason": ""},
        {"changed": True, "reason": "the running rules differ from the file's (changed by hand)"},
        {"changed": True, "reason": "the running rules differ from the file's (changed by hand)"},
        {"changed": True, "reason": "the table is not loaded"},
        {"changed": True, "reason": "the file changed since the last load"},
    ]
    loads = [line for line in log.read_text().splitlines() if line.startswith("-f ")]
    assert len(loads) == 4  # not in the no-change apply, not in check mode
    assert running.read_text() == "table inet opsctl_host { tcp dport 22 accept }\n"
    record = json.loads((tmp_path / "state" / "opsctl_host.json").read_text())
    assert record["listing"] == running.read_text()


@pytest.fixture(scope="module")
def module():
    spec = importlib.util.spec_from_file_location("opsctl_nft_table", MODULE)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def test_the_table_as_last_loaded_is_left_alone(module) -> None:
    record = {"source_sha256": "abc", "listing": "table inet t {}\n"}
    assert module.load_reason("abc", "table inet t {}\n", record) == ""
    assert module.load_reason("abc", "table inet t {}\n", None) == "no record of the last load"
    assert module.load_reason("abc", "table inet t {}\n", {"listing": "x"}) == (
        "the file changed since the last load")
