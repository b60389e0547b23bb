"""`opsctl check` CLI: exit codes, formats, the catalog listing, and the generated catalog doc."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from security_fixtures import failing_host, passing_host

from opsctl.check import scan as scan_mod
from opsctl.cli import check as check_cli
from opsctl.cli.main import cli, main
from security.docs import DOC, catalog_markdown
from security.evaluate import evaluate_target, scan_document

ROOT = Path(__file__).resolve().parents[2]


def fake_scan(facts: dict):
    def scan_local(level: int = 3) -> scan_mod.Scan:
        checks = scan_mod.catalog(level)
        target = evaluate_target("h1", "host", checks, facts)
        return scan_mod.Scan([target], level,
                             scan_document([target], level, "t", 0.01, len(checks)))
    return scan_local


@pytest.mark.parametrize(("facts", "fail_on", "code"), [
    (passing_host(), "any", 0), (failing_host(), "any", 1), (failing_host(), "high", 1),
])
def test_local_exit_codes(monkeypatch: pytest.MonkeyPatch, facts: dict, fail_on: str,
                          code: int) -> None:
    monkeypatch.setattr(check_cli, "scan_local", fake_scan(facts))
    result = CliRunner().invoke(cli, ["check", "--local", "--fail-on", fail_on],
                                standalone_mode=False)
    assert result.exception is None, result.output
    assert result.return_value == code


def test_fail_on_high_ignores_lower_severities(monkeypatch: pytest.MonkeyPatch) -> None:
    facts = passing_host()
    facts["sshd"]["logingracetime"] = 120  # severity low
    monkeypatch.setattr(check_cli, "scan_local", fake_scan(facts))
    run = CliRunner().invoke(cli, ["check", "--local", "--fail-on", "high"],
                             standalone_mode=False)
    assert run.return_value == 0
    run = CliRunner().invoke(cli, ["check", "--local"], standalone_mode=False)
    assert run.return_value == 1
    assert "sshd_login_grace_time" in run.output


def test_local_json_is_the_versioned_document(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(check_cli, "scan_local", fake_scan(failing_host()))
    result = CliRunner().invoke(cli, ["check", "--local", "--format", "json"],
                                standalone_mode=False)
    doc = json.loads(result.output)
    assert doc["schema"] == "opsctl-check/1"
    target = doc["targets"][0]
    assert "auditd_installed" in target["major_risks"]
    verdicts = {"符合", "部分符合", "不符合", "人工核查", "未测", "不适用"}
    assert {u["verdict"] for u in target["units"]} <= verdicts


def test_bad_input_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["check"], ["check", "--local", "--level", "4"],
                 ["check", "--local", "--fail-on", "critical"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2, argv


def test_catalog_listing_json() -> None:
    result = CliRunner().invoke(cli, ["check", "catalog", "--output", "json"])
    rows = json.loads(result.output)
    assert len(rows) >= 72
    row = next(r for r in rows if r["id"] == "faillock_enabled")
    assert row["clause"] == "8.1.4.1 b" and row["unit"] == "L3-CES1-02"
    assert row["clause_level2"] == "7.1.4.1 b" and row["remediation"] == "hardening-pam"
    level2 = json.loads(CliRunner().invoke(cli, ["check", "catalog", "--level", "2", "-o",
                                                 "json"]).output)
    assert all(2 in r["levels"] for r in level2) and len(level2) < len(rows)


def test_catalog_listing_table() -> None:
    result = CliRunner().invoke(cli, ["check", "catalog"])
    assert result.exit_code == 0 and "sshd_permit_root_login" in result.output


def test_generated_catalog_doc_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == catalog_markdown(), (
        "docs/catalog.md is stale: run `python -m security.docs > docs/catalog.md`")


def test_local_scan_of_this_machine_runs_the_collector() -> None:
    scan = scan_mod.scan_local(3)
    (target,) = scan.targets
    assert target.error is None
    assert len(target.results) == sum(1 for c in scan_mod.catalog(3) if c.spec.scope == "host")


def test_site_scan_with_a_recorded_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    """One collector run per host through the transport; unreachable hosts are errors."""
    from opsctl.check.fleet import Completed, scan_site
    from opsctl.site.model import load_site

    recorded = json.loads((ROOT / "tests/unit/facts/control-node.json").read_text())
    calls: list[str] = []

    def transport(host: str, script: str) -> Completed:
        calls.append(host)
        assert script.startswith("#!/usr/bin/env python3")
        if host == "db2":
            return Completed(255, "", "", not_run="db2: unreachable over SSH via lab (ssh: "
                             "connect to host 172.31.30.12 port 22: No route to host)")
        if host == "bak1":
            return Completed(1, "", "Traceback...\nSyntaxError: invalid syntax\n")
        return Completed(0, json.dumps({**recorded, "host": host}), "")

    site = load_site(str(ROOT / "inventory" / "reference"))
    scan = scan_site(site, 3, transport=transport)
    assert sorted(calls) == sorted(site.hosts)
    by_name = {t.name: t for t in scan.targets}
    assert set(by_name) == {*site.hosts, "reference"}
    assert by_name["db2"].error and "No route to host" in by_name["db2"].error
    assert all(r.status == "error" for r in by_name["db2"].results)
    assert "SyntaxError" in (by_name["bak1"].error or "")
    db1 = {r.id: r for r in by_name["db1"].results}
    # The site's whitelist applies to db1: the recorded listeners (2024, 3142) are not in it.
    assert db1["listening_ports_whitelisted"].status == "fail"
    assert db1["backup_pgbackrest_installed"].status == "not_applicable"
    assert by_name["reference"].scope == "network"
    only = scan_site(site, 3, ["app1"], transport=transport)
    assert [t.name for t in only.targets] == ["app1"]


def test_local_takes_no_site_scan_options() -> None:
    # --local --site SITE is allowed: the site's documented exceptions apply to this machine
    for argv in (["check", "--local", "--limit", "h1"], ["check", "--local", "--no-probes"],
                 ["check", "--local", "--site", "reference", "--no-probes"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2


def test_units_listing_json_names_every_unit_with_checks_or_manual_evidence() -> None:
    result = CliRunner().invoke(cli, ["check", "units", "--output", "json"])
    assert result.exit_code == 0, result.output
    units = {u["id"]: u for u in json.loads(result.output)}
    assert {"L3-CNS1-08", "L3-ABS1-20", "L3-CES1-35", "L3-SMC1-12"} <= set(units)
    assert "L3-CES1-16" not in units
    assert all(s["checks"] or s["manual"] for u in units.values() for s in u["steps"])
    ces02 = units["L3-CES1-02"]
    assert ces02["clause"] == "8.1.4.1 b" and "faillock_enabled" in ces02["steps"][0]["checks"]
    assert units["L3-CES1-24"]["steps"][0]["manual"]


def test_units_listing_table_and_a_bad_level(capsys: pytest.CaptureFixture[str]) -> None:
    result = CliRunner().invoke(cli, ["check", "units", "--level", "3"])
    assert result.exit_code == 0 and "L3-CES1-24" in result.output
    with pytest.raises(SystemExit) as info:
        main(["check", "units", "--level", "2"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "only level 3" in err
