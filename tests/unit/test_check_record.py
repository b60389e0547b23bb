"""`opsctl check --format record`: the record sheet an assessor files (opsctl/check/record.py),
from a site scan of recorded facts (tests/unit/facts/control-node.json on two hosts, one of
them unreachable) and the site's network target."""

from __future__ import annotations

import hashlib
import json
import re
from html import unescape
from pathlib import Path

import pytest
from click.testing import CliRunner

from opsctl import audit
from opsctl.check import record
from opsctl.check.fleet import Completed, scan_site
from opsctl.check.render import RENDERERS, write_reports
from opsctl.check.scan import Scan
from opsctl.cli.main import cli
from opsctl.site.model import load_site

ROOT = Path(__file__).resolve().parents[2]
FACTS = ROOT / "tests/unit/facts/control-node.json"


@pytest.fixture(scope="module")
def scan() -> Scan:
    recorded = json.loads(FACTS.read_text(encoding="utf-8"))
    site = load_site(str(ROOT / "inventory" / "reference"))

    def transport(host: str, script: str) -> Completed:
        if host == "db2":
            return Completed(255, "", "", not_run="db2: unreachable over SSH")
        return Completed(0, json.dumps({**recorded, "host": host}), "")

    full = scan_site(site, 3, transport=transport)
    keep = {"app1", "db2", site.name}  # two hosts and the network keep the test quick
    targets = [t for t in full.targets if t.name in keep]
    doc = dict(full.document, targets=[t for t in full.document["targets"]
                                       if t["name"] in keep])
    return Scan(targets, 3, doc)


def _units(scan: Scan) -> list[tuple[str, str]]:
    return [(t["name"], u["unit"]) for t in scan.document["targets"] for u in t["units"]]


def test_the_workbook_holds_a_row_per_object_and_unit_with_the_four_columns(
        scan: Scan, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    written = write_reports(scan, ["record"], tmp_path)
    assert {p.name for p in written} == {record.XLSX_FILE, record.HTML_FILE,
                                         record.EVIDENCE_FILE, f"{record.EVIDENCE_FILE}.sha256"}
    book = load_workbook(tmp_path / record.XLSX_FILE)
    names = [t["name"] for t in scan.document["targets"]]
    assert book.sheetnames == ["汇总", *names]
    rows = []
    manual_seen = 0
    for name in names:
        sheet = book[name]
        assert sheet.freeze_panes == "A2"
        assert sheet.page_setup.orientation == "landscape"
        assert [c.value.split()[0] for c in sheet[1]] == list(record.HEADERS)
        for cells in sheet.iter_rows(min_row=2, values_only=True):
            assert len(cells) == 4 and all(cells), cells  # the four columns filled
            rows.append((name, cells[0].split("\n")[0]))
            assert "扫描时间" in cells[2] and scan.document["started"] in cells[2]
            if record.MANUAL_MARK in cells[2]:
                manual_seen += 1
                # blank to fill in: the marker line ends the step with nothing after it
                assert re.search(rf"{record.FILL_IN}\n", cells[2])
        assert sheet["C2"].alignment.wrap_text
    assert rows == _units(scan)
    assert manual_seen > 0
    # the summary: objects × verdict counts that add up to the rows
    summary = book["汇总"]
    head = [c.value for c in summary[1]]
    for cells in summary.iter_rows(min_row=2, max_row=1 + len(names), values_only=True):
        total = cells[head.index("合计 total")]
        assert sum(cells[2:head.index("合计 total")]) == total
        assert total == sum(1 for n, _ in rows if n == cells[0])


def test_a_unit_row_records_what_was_found_and_where(scan: Scan) -> None:
    objects = {o.name: o for o in record.record_objects(scan.document)}
    app1 = {r.unit: r for r in objects["app1"].rows}
    ces02 = app1["L3-CES1-02"]
    assert ces02.clause == "8.1.4.1 b" and ces02.title_zh in ces02.indicator
    assert "faillock_enabled" in ces02.record and "来源" in ces02.record
    assert ces02.steps.startswith("1. ")
    ces24 = app1["L3-CES1-24"]  # evidenced by hand only
    assert ces24.manual and record.MANUAL_MARK in ces24.record
    assert "可信计算/安全启动配置及告警记录" in ces24.record
    db2 = objects["db2"]
    assert db2.error and all("未能检查" in r.record for r in db2.rows)
    assert any(o.scope == "network" and o.rows for o in objects.values())


def test_the_html_page_holds_the_same_rows_and_prints(scan: Scan, tmp_path: Path) -> None:
    write_reports(scan, ["record"], tmp_path)
    page = (tmp_path / record.HTML_FILE).read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    assert "http://" not in page and "https://" not in page and "<link" not in page
    assert "@media print" in page and "A4 landscape" in page
    assert page.count('<table class="record">') == len(scan.document["targets"])
    rows = re.findall(r'<tr data-unit="([^"]+)">((?:<td[^>]*>.*?</td>){4})</tr>', page, re.S)
    assert [u for u, _ in rows] == [u for _, u in _units(scan)]
    book_rows = [r.cells() for o in record.record_objects(scan.document) for r in o.rows]
    for (_, cells), expected in zip(rows, book_rows, strict=True):
        got = tuple(unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", cells, re.S))
        assert got == expected
    digest = (tmp_path / f"{record.EVIDENCE_FILE}.sha256").read_text().split()[0]
    assert digest in page


def test_the_evidence_bundle_names_each_fact_its_source_and_time_with_its_sha256(
        scan: Scan, tmp_path: Path) -> None:
    write_reports(scan, ["record"], tmp_path)
    data = (tmp_path / record.EVIDENCE_FILE).read_bytes()
    line = (tmp_path / f"{record.EVIDENCE_FILE}.sha256").read_text()
    assert line == f"{hashlib.sha256(data).hexdigest()}  {record.EVIDENCE_FILE}\n"
    bundle = json.loads(data)
    app1 = next(t for t in bundle["targets"] if t["name"] == "app1")
    assert app1["time"] == scan.document["started"]
    faillock = next(f for f in app1["facts"] if f["fact"] == "pam.faillock_preauth_before_unix")
    assert faillock["source"].startswith("/etc/pam.d") and "faillock_enabled" in faillock["checks"]


def test_unknown_verdicts_and_statuses_render_by_name(scan: Scan, tmp_path: Path) -> None:
    doc = json.loads(json.dumps(scan.document))
    unit = doc["targets"][0]["units"][0]
    unit["verdict"] = "例外"
    unit["steps"][0]["status"] = "exception"
    first = next(iter(unit["steps"][0]["checks"]), None)
    if first:
        unit["steps"][0]["checks"][first] = "exception"
    objects = record.record_objects(doc)
    row = objects[0].rows[0]
    assert row.verdict_text == "例外" and "【exception】" in row.record
    page = record.render_record_html(doc, objects)
    assert "例外" in page and "exception" in page
    record.write_record_xlsx(doc, objects, tmp_path / "x.xlsx")
    from openpyxl import load_workbook

    summary = load_workbook(tmp_path / "x.xlsx")["汇总"]
    assert "例外" in [c.value for c in summary[1]]


def test_sheet_names_are_valid_and_unique() -> None:
    used: set[str] = set()
    assert record._sheet_name("a/b:c", used) == "a_b_c"
    long = "x" * 40
    assert record._sheet_name(long, used) == "x" * 31
    assert record._sheet_name(long, used) == "x" * 29 + "~2"


def test_the_cli_writes_the_record_and_chains_the_bundle_sha256_in_the_audit_log(
        scan: Scan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("opsctl.cli.check.scan_local", lambda level: scan)
    assert "record" in RENDERERS
    out = tmp_path / "report"
    done = CliRunner().invoke(cli, ["check", "--local", "--format", "record,json",
                                    "--out", str(out)])
    assert done.exit_code in (0, 1), done.output
    assert (out / record.XLSX_FILE).is_file() and (out / "opsctl-check.json").is_file()
    digest = (out / f"{record.EVIDENCE_FILE}.sha256").read_text().split()[0]
    last = audit.records()[-1]
    assert last["action"] == "check.record" and last["args"]["sha256"] == digest
    assert audit.verify().ok
    # without --out the page goes to stdout
    page = CliRunner().invoke(cli, ["check", "--local", "--format", "record"])
    assert page.output.startswith("<!DOCTYPE html>")
