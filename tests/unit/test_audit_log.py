"""The audit log is a hash chain: intact verifies; any edit is caught at the edited record."""

from __future__ import annotations

import json

import pytest

from opsctl import audit
from opsctl.cli.main import main


@pytest.fixture
def log(state_dir):
    for i in range(5):
        audit.append("apply", {"site": "reference", "n": i}, "ok")
    return audit.log_path()


def verify_cli(capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(["audit", "verify"])
    return int(exc.value.code or 0), capsys.readouterr().out


def test_intact_log_verifies(log, capsys):
    assert audit.verify().ok
    code, out = verify_cli(capsys)
    assert code == 0 and "5 records" in out


def test_records_link_to_their_predecessor(log):
    records = audit.records()
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5]
    assert all(b["prev"] == a["hash"] for a, b in zip(records, records[1:], strict=False))
    assert records[0]["actor"] and records[0]["time"]


def _rewrite(log, change) -> None:
    lines = log.read_text().splitlines()
    change(lines)
    log.write_text("\n".join(lines) + "\n")


def test_edited_record_is_named(log, capsys):
    def change(lines):
        record = json.loads(lines[2])
        record["result"] = "failed"
        lines[2] = json.dumps(record)
    _rewrite(log, change)
    verdict = audit.verify()
    assert not verdict.ok and verdict.first_bad == 3 and "edited" in verdict.reason
    code, out = verify_cli(capsys)
    assert code == 1 and "line 3" in out


def test_edit_with_recomputed_hash_breaks_the_next_link(log):
    def change(lines):
        record = json.loads(lines[1])
        record["args"]["n"] = 99
        record["hash"] = audit._digest(record)
        lines[1] = json.dumps(record)
    _rewrite(log, change)
    verdict = audit.verify()
    assert not verdict.ok and verdict.first_bad == 3


def test_removed_record_is_caught(log):
    _rewrite(log, lambda lines: lines.pop(1))
    verdict = audit.verify()
    assert not verdict.ok and verdict.first_bad == 2


def test_append_after_verify_keeps_chain(log):
    audit.append("lab.up", {"site": "x"}, "ok")
    assert audit.verify().records == 6
