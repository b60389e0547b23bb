"""AIDE's daily check for the monitoring agent: the root timer's condensing of the recorded
dailyaidecheck logs (changes found, none, an AIDE error, a check cut short), the agent's
metrics from the file it writes, and the configuration key."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.aide_status import (
    condense,
    main,
    parse_counts,
    parse_entries,
    parse_error,
    parse_report,
    parse_start,
)
from monitor.collectors.aide import AideCollector
from monitor.config import ConfigError, load_config

LOGS = Path(__file__).parent / "facts" / "aide"


@pytest.mark.parametrize(("log", "expected"), [
    ("changed.log", {"exit_code": 5, "added": 1, "removed": 0, "changed": 2}),
    ("unchanged.log", {"exit_code": 0, "added": 0, "removed": 0, "changed": 0}),
    ("error.log", {"exit_code": 17, "added": 0, "removed": 0, "changed": 0}),
    ("interrupted.log", {"exit_code": None, "added": 0, "removed": 0, "changed": 0}),
])
def test_the_daily_checks_outcome_is_read_from_its_log(log, expected):
    assert parse_report((LOGS / log).read_text()) == expected


def test_changes_without_their_summary_are_still_counted_from_the_exit_code():
    text = "AIDE returned with exit code 6. Removed and changed entries detected!\n"
    assert parse_report(text) == {"exit_code": 6, "added": 0, "removed": 1, "changed": 1}


def test_the_status_keeps_counts_and_times_never_paths(tmp_path):
    log, baseline, out = tmp_path / "aide.log", tmp_path / "aide.db", tmp_path / "status.json"
    log.write_text((LOGS / "changed.log").read_text())
    baseline.write_bytes(b"")
    os.utime(baseline, (1_765_000_000, 1_765_000_000))
    os.utime(log, (1_765_090_000, 1_765_090_000))
    assert main(["--output", str(out), "--log", str(log), "--baseline", str(baseline)]) == 0
    data = json.loads(out.read_text())
    assert data["baseline"] == 1_765_000_000
    assert data["check"] == {"finished": 1_765_090_000, "exit_code": 5, "added": 1,
                             "removed": 0, "changed": 2}
    assert "/usr/local/sbin" not in out.read_text() and "sshd_config" not in out.read_text()
    assert out.stat().st_mode & 0o777 == 0o640


def test_before_the_first_daily_check_only_the_baseline_is_known(tmp_path):
    baseline = tmp_path / "aide.db"
    baseline.write_bytes(b"")
    data = condense(tmp_path / "no.log", baseline, now=10.0)
    assert data == {"written": 10.0, "baseline": baseline.stat().st_mtime, "check": None}


def metrics(path: Path | None) -> dict[str, float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AideCollector(path))
    text = generate_latest(registry).decode()
    return {(s.name + (f"{{change={s.labels['change']}}}" if "change" in s.labels else "")):
            s.value for f in text_string_to_metric_families(text) for s in f.samples}


def test_the_agent_exports_the_last_check(tmp_path):
    status = tmp_path / "status.json"
    status.write_text(json.dumps(condense(LOGS / "changed.log", tmp_path / "none", now=100.0)))
    got = metrics(status)
    assert got["opsctl_aide_status_readable"] == 1
    assert got["opsctl_aide_status_timestamp_seconds"] == 100
    assert got["opsctl_aide_last_check_exit_code"] == 5
    assert got["opsctl_aide_last_check_entries{change=added}"] == 1
    assert got["opsctl_aide_last_check_entries{change=changed}"] == 2
    assert got["opsctl_aide_last_check_entries{change=removed}"] == 0
    assert "opsctl_aide_baseline_timestamp_seconds" not in got  # no baseline file


def test_a_check_cut_short_is_exported_as_255(tmp_path):
    status = tmp_path / "status.json"
    status.write_text(json.dumps(condense(LOGS / "interrupted.log", tmp_path / "x", now=1.0)))
    assert metrics(status)["opsctl_aide_last_check_exit_code"] == 255


def test_no_status_file_exports_nothing_and_a_broken_one_says_so(tmp_path):
    assert metrics(tmp_path / "absent.json") == {}  # no AIDE here: the timer is skipped
    broken = tmp_path / "status.json"
    broken.write_text("{not json")
    assert metrics(broken) == {"opsctl_aide_status_readable": 0}


def test_the_config_key_takes_an_absolute_path(tmp_path):
    config = tmp_path / "agent.json"
    config.write_text('{"aide_status_file": "/var/lib/opsctl-aide-status/status.json"}')
    assert load_config(config).aide_status_file == Path("/var/lib/opsctl-aide-status/status.json")
    config.write_text('{"aide_status_file": "status.json"}')
    with pytest.raises(ConfigError, match="aide_status_file: expected an absolute file path"):
        load_config(config)


# --- the entries: the one reading of AIDE's lists, for the hosts' timer and the control node --

def test_the_daily_check_lists_its_entries_with_their_kind():
    entries = parse_entries((LOGS / "changed.log").read_text())
    assert [(e["change"], e["path"]) for e in entries] == [
        ("added", "/usr/local/sbin/opsctl-aide-probe"),
        ("changed", "/etc/ssh/sshd_config"),
        ("changed", "/usr/local/sbin")]
    assert entries[0]["summary"] == "f++++++++++++++++"
    assert ".C.." in entries[1]["summary"]  # the checksum changed


@pytest.mark.parametrize("log", ["unchanged.log", "error.log", "interrupted.log"])
def test_a_check_without_findings_lists_no_entry(log):
    assert parse_entries((LOGS / log).read_text()) == []


def test_the_update_report_lists_what_it_wrote_into_the_new_database():
    """`aide --update`'s report (AIDE 0.18's plain format, the check's): the entry lists are
    read, the detailed section ("File: /etc/ssh/sshd_config") and the databases' are not."""
    text = (LOGS / "update.out").read_text()
    assert parse_counts(text, 7) == {"added": 2, "removed": 1, "changed": 2}
    entries = parse_entries(text)
    assert [(e["change"], e["path"]) for e in entries] == [
        ("added", "/etc/nginx/tls/lb1.crt.1"), ("added", "/usr/lib/opsctl/current"),
        ("removed", "/usr/local/sbin/opsctl-aide-probe"),
        ("changed", "/etc/ssh/sshd_config"), ("changed", "/usr/local/sbin")]
    assert entries[3]["summary"] == "f > ... mc..C.. . "  # as AIDE wrote it, columns kept
    assert parse_start(text) == "2026-12-06 09:14:02 +0000"


def test_ungrouped_and_unsummarised_lists_still_say_which_kind():
    ungrouped = ("---------------------------------------------------\n"
                 "Added, removed and changed entries:\n"
                 "---------------------------------------------------\n\n"
                 "f+++++++++++++++++: /etc/new\n"
                 "d-----------------: /opt/gone\n"
                 "f   ...    .C.. . : /etc/passwd\n"
                 "changed: /etc/group\n"
                 "added: /etc/a path: with a colon\n\n"
                 "---------------------------------------------------\n"
                 "Detailed information about changes:\n"
                 "---------------------------------------------------\n\n"
                 "File: /etc/passwd\n")
    assert [(e["change"], e["path"]) for e in parse_entries(ungrouped)] == [
        ("added", "/etc/new"), ("removed", "/opt/gone"), ("changed", "/etc/passwd"),
        ("changed", "/etc/group"), ("added", "/etc/a path: with a colon")]


def test_the_error_aide_wrote_is_kept_from_the_daily_log():
    assert parse_error((LOGS / "error.log").read_text()).startswith(
        "/etc/aide/aide.conf:42: unknown expression 'Checksumz'")
    assert parse_error((LOGS / "changed.log").read_text()) is None
