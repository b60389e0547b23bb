"""The record sheet an assessor files (测评记录): per object (each host, the site's network) and
GB/T 28448-2019 test unit, the four columns 测评指标 / 测评实施 / 结果记录 / 符合情况.

Written from the opsctl-check/1 document as an .xlsx workbook (a sheet per object and a summary
sheet) and the same rows as a self-contained HTML page that prints on A4 landscape, with a raw
evidence bundle beside them: every fact a check read, with its value, where it came from and
the scan time, and the bundle's sha256. A manual step's record is left blank to fill in by hand,
marked 待人工核查 with the evidence to collect. A verdict or status this module does not know
(a later evaluator's) is shown by its name.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from security.evaluate import ERROR, FAIL, NA, NOT_TESTED_KIND, PASS, VERDICT_EN

HEADERS = ("测评指标", "测评实施", "结果记录", "符合情况")
HEADERS_EN = ("test unit", "test steps", "record of results", "verdict")
VERDICTS = ("符合", "部分符合", "不符合", "人工核查", "未测", "不适用")
MANUAL_MARK = "待人工核查"
FILL_IN = "核查记录："  # followed by the blank the assessor fills in
STATUS_ZH = {PASS: "通过", FAIL: "不通过", NA: "不适用", ERROR: "无法判定",
             "not_evaluated": "未评估", "manual": MANUAL_MARK}
EVIDENCE_FILE = "opsctl-check-evidence.json"
XLSX_FILE = "opsctl-check-record.xlsx"
HTML_FILE = "opsctl-check-record.html"


@dataclass(frozen=True)
class Row:
    unit: str
    clause: str
    title_zh: str
    title_en: str
    steps: str  # 测评实施
    record: str  # 结果记录
    verdict: str  # 符合情况
    manual: bool  # a step is left to fill in by hand

    @property
    def indicator(self) -> str:
        return f"{self.unit}\n{self.clause}\n{self.title_zh}" + (
            f"\n{self.title_en}" if self.title_en else "")

    @property
    def verdict_text(self) -> str:
        en = VERDICT_EN.get(self.verdict)
        return f"{self.verdict}\n{en}" if en else self.verdict

    def cells(self) -> tuple[str, str, str, str]:
        return self.indicator, self.steps, self.record, self.verdict_text


@dataclass(frozen=True)
class RecordObject:
    name: str
    scope: str
    error: str | None
    rows: list[Row]

    def verdict_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[r.verdict] = out.get(r.verdict, 0) + 1
        return out


# ---------------------------------------------------------------- content

def record_objects(document: dict[str, Any]) -> list[RecordObject]:
    """One object per target of the scan, one row per test unit judged on it."""
    started = str(document.get("started", ""))
    out = []
    for target in document.get("targets", []):
        checks = {c["id"]: c for c in target.get("checks", [])}
        rows = [_row(u, checks, started, target.get("error")) for u in target.get("units", [])]
        out.append(RecordObject(str(target.get("name", "")), str(target.get("scope", "")),
                                target.get("error"), rows))
    return out


def _row(unit: dict[str, Any], checks: dict[str, dict[str, Any]], started: str,
         error: str | None) -> Row:
    steps = unit.get("steps") or []
    implement = "\n".join(
        f"{i}. [{s.get('object', '')}] {s.get('examine', '')}"
        + (f"\n   {s['examine_en']}" if s.get("examine_en") else "")
        for i, s in enumerate(steps, start=1)) or "—"
    lines = [f"扫描时间 scan time: {started}"]
    if error:
        lines.append(f"未能检查 not scanned: {error}")
    manual = False
    for i, step in enumerate(steps, start=1):
        text, is_manual = _step_record(step, checks)
        manual = manual or is_manual
        lines.append(f"{i}. {text}")
    if not steps:  # a document from before units had steps: the checks alone
        lines += [_check_line(cid, status, checks)
                  for cid, status in (unit.get("checks") or {}).items()]
    return Row(str(unit.get("unit", "")), str(unit.get("clause", "")),
               str(unit.get("title_zh", "")), str(unit.get("title_en", "")), implement,
               "\n".join(lines), str(unit.get("verdict", "")), manual)


def _step_record(step: dict[str, Any], checks: dict[str, dict[str, Any]]) -> tuple[str, bool]:
    status = str(step.get("status", ""))
    head = f"【{STATUS_ZH.get(status, status)}】"
    parts = [_check_line(cid, st, checks) for cid, st in (step.get("checks") or {}).items()]
    is_manual = bool(step.get("manual")) and status != NA
    if is_manual:
        mark = "" if status == "manual" else f"【{MANUAL_MARK}】"  # else the head says it
        parts.append(f"{mark}应收集 collect: {step['manual']}\n   {FILL_IN}\n")
    body = "\n".join("   " + p for p in parts)
    return (head + ("\n" + body if body else "")), is_manual


def _check_line(cid: str, status: str, checks: dict[str, dict[str, Any]]) -> str:
    check = checks.get(cid)
    if check is None:
        return f"{cid}: {STATUS_ZH.get(status, status)}（本次扫描未包含 not in this scan）"
    shown = STATUS_ZH.get(status, status)
    if status == NA and check.get("kind") == NOT_TESTED_KIND:
        shown = "未测 not tested here"
    out = f"{cid}: {shown}"
    if check.get("reason"):
        out += f" — {check['reason']}"
    for e in check.get("evidence") or []:
        out += (f"\n     {e.get('fact')} = {_brief(e.get('found'))}"
                f"（来源 {e.get('where', '')}；应为 {e.get('expected', '')}）")
    return out


def _brief(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "…"


# ---------------------------------------------------------------- evidence bundle

def evidence_bundle(document: dict[str, Any]) -> dict[str, Any]:
    """Every fact the checks read, per target: its value, where it came from, which checks read
    it; with the scan time. The evaluator keeps only what the checks read, not the whole
    collector output."""
    targets = []
    for target in document.get("targets", []):
        facts: dict[tuple[str, str], dict[str, Any]] = {}
        for check in target.get("checks", []):
            for e in check.get("evidence") or []:
                key = (str(e.get("fact")), str(e.get("where", "")))
                entry = facts.setdefault(key, {"fact": key[0], "source": key[1],
                                               "found": e.get("found"), "read": e.get("ok")
                                               is not None, "checks": []})
                entry["checks"].append(check.get("id"))
        targets.append({"name": target.get("name"), "scope": target.get("scope"),
                        "error": target.get("error"), "time": document.get("started"),
                        "facts": sorted(facts.values(), key=lambda f: f["fact"])})
    return {"schema": "opsctl-evidence/1", "scan_schema": document.get("schema"),
            "level": document.get("level"), "started": document.get("started"),
            "targets": targets}


def bundle_bytes(document: dict[str, Any]) -> bytes:
    return (json.dumps(evidence_bundle(document), indent=2, ensure_ascii=False, sort_keys=True)
            + "\n").encode()


# ---------------------------------------------------------------- HTML

CSS = """
body { font-family: "Noto Sans CJK SC","Source Han Sans SC","Microsoft YaHei","SimSun",sans-serif;
       margin: 1.5em auto; max-width: 80em; padding: 0 1em; color: #000; line-height: 1.4; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
.meta, .en { color: #444; }
table { border-collapse: collapse; width: 100%; font-size: .85em; table-layout: fixed; }
th, td { border: 1px solid #666; padding: .3em .4em; vertical-align: top; text-align: left;
         white-space: pre-wrap; word-break: break-word; }
th { background: #eee; }
col.c1 { width: 16%; } col.c2 { width: 28%; } col.c3 { width: 46%; } col.c4 { width: 10%; }
td.manual { background: #fffbe6; } td.num { text-align: right; }
@page { size: A4 landscape; margin: 12mm; }
@media print {
  body { margin: 0; max-width: none; font-size: 9pt; }
  thead { display: table-header-group; } tr { break-inside: avoid; }
  section.object { break-before: page; } td.manual { background: none; }
}
"""


def render_record_html(document: dict[str, Any], objects: list[RecordObject],
                       bundle_sha256: str | None = None) -> str:
    verdicts = _verdict_columns(objects)
    parts = [
        "<!DOCTYPE html>", '<html lang="zh-CN"><head><meta charset="utf-8">',
        "<title>等级保护测评记录 Graded-protection test record</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>网络安全等级保护 测评记录<br><small>Graded-protection test record "
        "(GB/T 28448-2019)</small></h1>",
        f'<p class="meta">等级 level {escape(str(document.get("level", "")))} · '
        f'扫描时间 scan time {escape(str(document.get("started", "")))}'
        + (f" · 原始证据 evidence bundle <code>{EVIDENCE_FILE}</code> sha256 "
           f"<code>{escape(bundle_sha256)}</code>" if bundle_sha256 else "") + "</p>",
        "<h2>汇总 <small>Summary</small></h2>",
        '<table class="summary"><thead><tr><th>对象 object</th><th>范围 scope</th>'
        + "".join(f"<th>{escape(v)}</th>" for v in verdicts)
        + "<th>合计 total</th></tr></thead><tbody>",
    ]
    for obj in objects:
        counts = obj.verdict_counts()
        parts.append(f"<tr><td>{escape(obj.name)}</td><td>{escape(obj.scope)}</td>"
                     + "".join(f'<td class="num">{counts.get(v, 0)}</td>' for v in verdicts)
                     + f'<td class="num">{len(obj.rows)}</td></tr>')
    parts.append("</tbody></table>")
    for obj in objects:
        parts.append(f'<section class="object" id="o-{escape(obj.name)}">'
                     f"<h2>{escape(obj.name)} <small>{escape(obj.scope)}</small></h2>")
        if obj.error:
            parts.append(f"<p>未能检查 not scanned: {escape(obj.error)}</p>")
        parts.append('<table class="record"><colgroup><col class="c1"><col class="c2">'
                     '<col class="c3"><col class="c4"></colgroup><thead><tr>'
                     + "".join(f'<th>{zh} <span class="en">{en}</span></th>'
                               for zh, en in zip(HEADERS, HEADERS_EN, strict=True))
                     + "</tr></thead><tbody>")
        for row in obj.rows:
            cells = row.cells()
            parts.append(
                f'<tr data-unit="{escape(row.unit)}">'
                + "".join(f"<td>{escape(c)}</td>" for c in cells[:2])
                + f'<td{" class=manual" if row.manual else ""}>{escape(cells[2])}</td>'
                + f"<td>{escape(cells[3])}</td></tr>")
        parts.append("</tbody></table></section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _verdict_columns(objects: list[RecordObject]) -> list[str]:
    seen = [v for obj in objects for r in obj.rows for v in [r.verdict]]
    return list(VERDICTS) + [v for v in dict.fromkeys(seen) if v not in VERDICTS]


# ---------------------------------------------------------------- xlsx

WIDTHS = (22, 40, 62, 12)  # characters; about 270 mm of A4 landscape at 9 pt


def write_record_xlsx(document: dict[str, Any], objects: list[RecordObject], path: Path,
                      bundle_sha256: str | None = None) -> None:
    from openpyxl import Workbook  # noqa: PLC0415 - only this format needs it
    from openpyxl.styles import Alignment, Font, PatternFill

    font, bold = Font(name="SimSun", size=9), Font(name="SimSun", size=9, bold=True)
    fill = PatternFill("solid", fgColor="EEEEEE")
    wrap = Alignment(wrap_text=True, vertical="top")
    book = Workbook()
    summary = book.active
    summary.title = "汇总"
    verdicts = _verdict_columns(objects)
    head = ["对象 object", "范围 scope", *verdicts, "合计 total"]
    summary.append(head)
    for obj in objects:
        counts = obj.verdict_counts()
        summary.append([obj.name, obj.scope, *(counts.get(v, 0) for v in verdicts),
                        len(obj.rows)])
    summary.append([])
    summary.append(["扫描时间 scan time", str(document.get("started", ""))])
    summary.append(["等级 level", str(document.get("level", ""))])
    if bundle_sha256:
        summary.append(["原始证据 evidence", EVIDENCE_FILE])
        summary.append(["sha256", bundle_sha256])
    _style(summary, [16, 10] + [9] * (len(verdicts) + 1), font, bold, fill, wrap)
    used: set[str] = {summary.title}
    for obj in objects:
        sheet = book.create_sheet(_sheet_name(obj.name, used))
        sheet.append([f"{zh} {en}" for zh, en in zip(HEADERS, HEADERS_EN, strict=True)])
        for row in obj.rows:
            sheet.append(list(row.cells()))
        _style(sheet, list(WIDTHS), font, bold, fill, wrap)
        for i, row in enumerate(obj.rows, start=2):
            sheet.row_dimensions[i].height = _height(row.cells(), WIDTHS)
    book.save(path)


def _style(sheet: Any, widths: list[int], font: Any, bold: Any, fill: Any, wrap: Any) -> None:
    from openpyxl.utils import get_column_letter  # noqa: PLC0415

    for i, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(i)].width = width
    for r, cells in enumerate(sheet.iter_rows(), start=1):
        for cell in cells:
            cell.font, cell.alignment = (bold if r == 1 else font), wrap
            if r == 1:
                cell.fill = fill
    sheet.freeze_panes = "A2"
    sheet.print_title_rows = "1:1"
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
    sheet.page_setup.fitToWidth, sheet.page_setup.fitToHeight = 1, 0
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    sheet.page_margins.left = sheet.page_margins.right = 0.4


def _sheet_name(name: str, used: set[str]) -> str:
    """An Excel sheet name: at most 31 characters, none of []:*?/\\, unique."""
    base = "".join("_" if ch in "[]:*?/\\" else ch for ch in name).strip("'")[:31] or "object"
    out, n = base, 2
    while out in used:
        suffix = f"~{n}"
        out, n = base[:31 - len(suffix)] + suffix, n + 1
    used.add(out)
    return out


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _height(cells: tuple[str, ...], widths: tuple[int, ...]) -> float:
    """Rows written by openpyxl are not auto-fitted: estimate the wrapped lines."""
    lines = max(sum(max(1, -(-_width(line) // max(1, w - 1))) for line in text.split("\n"))
                for text, w in zip(cells, widths, strict=True))
    return min(409.0, 12.0 * lines + 4)


# ---------------------------------------------------------------- files

def write_record(document: dict[str, Any], directory: Path) -> list[Path]:
    """The evidence bundle with its .sha256, the workbook and the HTML page; the paths."""
    data = bundle_bytes(document)
    digest = hashlib.sha256(data).hexdigest()
    bundle = directory / EVIDENCE_FILE
    bundle.write_bytes(data)
    checksum = directory / f"{EVIDENCE_FILE}.sha256"
    checksum.write_text(f"{digest}  {EVIDENCE_FILE}\n", encoding="utf-8")
    objects = record_objects(document)
    xlsx, html = directory / XLSX_FILE, directory / HTML_FILE
    write_record_xlsx(document, objects, xlsx, digest)
    html.write_text(render_record_html(document, objects, digest), encoding="utf-8")
    return [xlsx, html, bundle, checksum]


def bundle_digest(paths: list[Path]) -> str | None:
    """The sha256 recorded beside an evidence bundle among written paths, if any."""
    for path in paths:
        if path.name == f"{EVIDENCE_FILE}.sha256":
            return path.read_text(encoding="utf-8").split()[0]
    return None
