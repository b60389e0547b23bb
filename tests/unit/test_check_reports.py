"""Reports from recorded scans (tests/unit/results: the hdev lab before and after hardening):
the HTML report (and, when chromium is installed, a headless screenshot of it), JUnit XML,
and `opsctl check diff`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from click.testing import CliRunner

from opsctl.check.diff import diff_scans
from opsctl.check.html import render_html
from opsctl.check.junit import render_junit
from opsctl.check.render import check_titles, parse_formats
from opsctl.cli.main import cli
from opsctl.errors import InvalidInput

RESULTS = Path(__file__).resolve().parent / "results"
BEFORE = RESULTS / "hdev-before-hardening.json"
AFTER = RESULTS / "hdev-after-hardening.json"


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_html_report_is_self_contained_bilingual_and_complete() -> None:
    doc = load(BEFORE)
    html = render_html(doc, check_titles())
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert html.index("合规检查报告") < html.index("compliance report")  # Chinese first
    for heading in ("Summary by host", "Summary by clause", "证据 evidence", "整改 remediation"):
        assert heading in html
    for target in doc["targets"]:
        assert f'id="t-{target["name"]}"' in html
    assert "L3-CES1-02" in html and "8.1.4.1 b" in html
    assert "禁止root通过SSH口令登录" in html  # a catalog title
    assert "opsctl harden --tags hardening-pam" in html  # a finding's fix
    assert "@media print" in html


def test_the_html_report_escapes_what_it_shows() -> None:
    doc = load(AFTER)
    doc["targets"][0]["checks"][0]["reason"] = "<script>alert(1)</script>"
    doc["targets"][0]["checks"][0]["status"] = "fail"
    html = render_html(doc, check_titles())
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_chromium_renders_the_report_and_its_summary_table(tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (./setup installs it)")
    page = tmp_path / "report.html"
    page.write_text(render_html(load(BEFORE), check_titles()), encoding="utf-8")
    shot = tmp_path / "report.png"
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
         page.as_uri()], capture_output=True, text=True, timeout=120, check=False)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert '<table class="summary">' in dom.stdout and "mon1" in dom.stdout
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--window-size=1280,900", f"--screenshot={shot}", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    pixels = _distinct_colours(shot)
    if pixels is not None:  # Pillow present: the page is not blank
        assert pixels > 8


def _distinct_colours(path: Path) -> int | None:
    try:
        from PIL import Image  # noqa: PLC0415 - optional
    except ImportError:
        return None
    with Image.open(path) as image:
        return len(image.convert("RGB").getcolors(maxcolors=1 << 20) or [])


def test_junit_has_a_suite_per_target_and_a_case_per_check() -> None:
    doc = load(BEFORE)
    root = ET.fromstring(render_junit(doc))
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [t["name"] for t in doc["targets"]]
    for suite, target in zip(suites, doc["targets"], strict=True):
        assert len(suite.findall("testcase")) == len(target["checks"])
        assert int(suite.get("failures")) == target["counts"]["fail"]
        assert int(suite.get("skipped")) == target["counts"]["not_applicable"]
        assert int(suite.get("errors")) == target["counts"]["error"]
    failed = root.find(".//testcase[@name='pam_no_nullok']/failure")
    assert failed is not None and "nullok" in failed.get("message")
    assert "opsctl harden --tags hardening-pam" in failed.text


def test_diff_before_and_after_hardening() -> None:
    result = diff_scans(load(BEFORE), load(AFTER))
    kinds = {(c.target, c.check): c.kind for c in result.changes}
    for host in ("mon1", "app1", "db1"):
        assert kinds[(host, "pam_no_nullok")] == "fixed"
        assert kinds[(host, "sshd_access_restricted")] == "fixed"
    assert not result.regressions
    assert result.unchanged > 0
    assert diff_scans(load(AFTER), load(AFTER)).changes == []


def test_diff_reports_a_regression_and_exits_1(tmp_path: Path) -> None:
    after = load(AFTER)
    broken = json.loads(json.dumps(after))
    check = next(c for c in broken["targets"][1]["checks"] if c["id"] == "sshd_permit_root_login")
    check["status"], check["reason"] = "fail", "sshd.permitrootlogin is yes"
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(after))
    new.write_text(json.dumps(broken))
    done = CliRunner().invoke(cli, ["check", "diff", str(old), str(new), "-o", "json"])
    assert done.exit_code == 1, done.output
    got = json.loads(done.output)
    assert got["summary"]["regressed"] == 1
    assert got["changes"] == [{"target": broken["targets"][1]["name"],
                               "check": "sshd_permit_root_login", "old": "pass", "new": "fail",
                               "reason": "sshd.permitrootlogin is yes", "kind": "regressed"}]


def test_diff_refuses_a_file_that_is_not_a_scan(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "something-else"}')
    done = CliRunner().invoke(cli, ["check", "diff", str(bad), str(AFTER)])
    assert isinstance(done.exception, InvalidInput)


def test_formats_parse_and_unknown_ones_are_refused() -> None:
    assert parse_formats("html, junit,html") == ["html", "junit"]
    with pytest.raises(InvalidInput):
        parse_formats("html,pdf")


def test_the_html_report_lists_the_manual_steps_of_units_left_to_the_assessor() -> None:
    from security.evaluate import evaluate_target, scan_document
    from security.schema import load_catalog

    checks = load_catalog()
    target = evaluate_target("h1", "host", checks, {})
    html = render_html(scan_document([target], 3, "t", 0.1, len(checks)), check_titles())
    assert "人工核查 manual verification" in html
    # a unit no check evidences, with the evidence an assessor collects
    assert "L3-CES1-24" in html and "可信计算/安全启动配置及告警记录" in html
    # a unit whose checks could not be read here names them
    assert "not evaluated here" in html and "<code>faillock_enabled</code>" in html


def test_the_html_report_shows_how_to_verify_each_check_by_hand() -> None:
    doc = load(AFTER)
    check = doc["targets"][0]["checks"][0]
    check["manual_verification"] = "执行sshd -T，核查<permitrootlogin>为no。"
    html = render_html(doc, check_titles())
    assert "人工核查方法" in html and "核查&lt;permitrootlogin&gt;为no" in html
    # a document recorded before the field existed renders without it
    del check["manual_verification"]
    assert "人工核查方法" not in render_html(doc, check_titles())
