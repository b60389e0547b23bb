"""One self-contained HTML report of a scan: Chinese first with English alongside, a summary
by host and by GB/T 28448-2019 test unit (clause), a drill-down per host with the evidence and
the fix, and print styles. Rendered from the opsctl-check/1 document, so a recorded scan renders
the same as a live one."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from security.evaluate import ERROR, EXCEPTION, FAIL, NA, NOT_TESTED_KIND, PASS, VERDICT_EN

STATUS_LABEL = {PASS: ("通过", "pass"), FAIL: ("不通过", "fail"),
                NA: ("不适用", "not applicable"), ERROR: ("无法判定", "error"),
                EXCEPTION: ("例外", "exception")}
VERDICT_CLASS = {"符合": "ok", "部分符合": "partial", "不符合": "bad", "人工核查": "manual",
                 "未测": "manual", "不适用": "na"}
SEVERITY_LABEL = {"high": "高 high", "medium": "中 medium", "low": "低 low"}
STATUS_ORDER = {FAIL: 0, EXCEPTION: 1, ERROR: 2, PASS: 3, NA: 4}
COUNTED = (PASS, FAIL, NA, ERROR, EXCEPTION)
EXCEPTION_STATE = {"applied": "已适用 applied", "unused": "未使用 unused (retire it)",
                   "expired": "已过期 expired (does not apply)"}

CSS = """
:root { --ok:#1a7f37; --bad:#cf222e; --partial:#9a6700; --na:#6e7781; --line:#d0d7de; }
body { font-family: "Noto Sans CJK SC","Source Han Sans SC","Microsoft YaHei",system-ui,sans-serif;
       margin: 2em auto; max-width: 75em; color: #1f2328; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: .1em; }
h1 small, h2 small { color: #57606a; font-weight: normal; }
h2 { font-size: 1.25em; border-bottom: 2px solid var(--line); padding-bottom: .2em;
     margin-top: 2em; }
table { border-collapse: collapse; width: 100%; margin: .6em 0 1.2em; font-size: .9em; }
th, td { border: 1px solid var(--line); padding: .3em .5em; text-align: left; vertical-align: top; }
th { background: #f6f8fa; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.en { color: #57606a; font-size: .92em; }
.s-pass, .v-ok { color: var(--ok); font-weight: 600; }
.s-fail, .v-bad { color: var(--bad); font-weight: 600; }
.s-error, .v-partial { color: var(--partial); font-weight: 600; }
.s-not_applicable, .v-na { color: var(--na); }
.v-manual { color: #8250df; font-weight: 600; }
.s-exception { color: #fff; background: #0969da; border-radius: 3px; padding: 0 .3em;
               font-weight: 600; } .s-exception .en { color: #ddf4ff; }
.exception { border-left: 3px solid #0969da; padding-left: .4em; margin-top: .3em; }
.meta { color: #57606a; } .risk { color: var(--bad); font-weight: 600; }
code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .92em;
       word-break: break-all; }
details { margin: .8em 0; border: 1px solid var(--line); border-radius: 6px; padding: .4em .8em; }
summary { cursor: pointer; font-weight: 600; font-size: 1.05em; }
ul.evidence { margin: 0; padding-left: 1.1em; }
.mv { color: #57606a; font-size: .9em; margin-top: .2em; }
.fix code { background: #f6f8fa; padding: 0 .2em; }
@media print {
  body { margin: 0; max-width: none; font-size: 10pt; }
  details { border: none; padding: 0; } details > summary { list-style: none; }
  details:not([open]) > *:not(summary) { display: block; }
  h2 { break-after: avoid; } tr { break-inside: avoid; } thead { display: table-header-group; }
  .host { break-before: page; }
}
"""


def _status(status: str, kind: str = "") -> str:
    if status == NA and kind == NOT_TESTED_KIND:  # the requirement exists: not tested here
        return '<span class="s-error">未测 <span class="en">not tested here</span></span>'
    zh, en = STATUS_LABEL.get(status, (status, status))
    return f'<span class="s-{escape(status)}">{zh} <span class="en">{en}</span></span>'


def _verdict(verdict: str) -> str:
    cls = VERDICT_CLASS.get(verdict, "na")
    return (f'<span class="v-{cls}">{escape(verdict)} '
            f'<span class="en">{escape(VERDICT_EN.get(verdict, ""))}</span></span>')


def _title(check_id: str, titles: Mapping[str, tuple[str, str]]) -> str:
    zh, en = titles.get(check_id, ("", ""))
    out = f"<code>{escape(check_id)}</code>"
    if zh:
        out += f"<br>{escape(zh)}<br><span class=\"en\">{escape(en)}</span>"
    return out


def _evidence(check: dict[str, Any]) -> str:
    items = []
    for e in check.get("evidence", []):
        mark = {True: "✓", False: "✗", None: "?"}[e.get("ok")]
        items.append(f"<li>{mark} <code>{escape(str(e['fact']))}</code> = "
                     f"<code>{escape(_brief(e.get('found')))}</code>; "
                     f"<span class=\"en\">expected {escape(str(e.get('expected', '')))}; "
                     f"from {escape(str(e.get('where', '')))}</span></li>")
    reason = f"<div>{escape(check.get('reason', ''))}</div>" if check.get("reason") else ""
    return (reason + (f'<ul class="evidence">{"".join(items)}</ul>' if items else "")
            + _exception(check.get("exception")) + _manual_verification(check))


def _manual_verification(check: dict[str, Any]) -> str:
    """How the assessor confirms the verdict by hand (documents before it was added: none)."""
    text = check.get("manual_verification")
    if not text:
        return ""
    return (f'<div class="mv">人工核查方法 <span class="en">how to verify by hand</span>: '
            f"{escape(str(text))}</div>")


def _exception(exc: dict[str, Any] | None) -> str:
    """The site's documented exception on a check: never a pass, the assessor judges it."""
    if not exc:
        return ""
    if exc.get("state") == "expired":
        head = (f'<b class="s-fail">例外已过期 exception expired on '
                f'{escape(str(exc.get("expires", "")))}</b> (does not apply)')
    else:
        head = (f'<span class="s-exception">例外 <span class="en">exception</span></span> '
                f'有效期至 until {escape(str(exc.get("expires", "")))}')
    return (f'<div class="exception">{head}<br>理由 reason: {escape(str(exc.get("reason", "")))}'
            f'<br>补偿措施 compensating control: '
            f'{escape(str(exc.get("compensating_control", "")))}'
            f'<br>批准人 approver: {escape(str(exc.get("approver", "")))}</div>')


def _brief(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _fix(check: dict[str, Any]) -> str:
    fix = str(check.get("remediation", ""))
    if not fix or check.get("status") == PASS:
        return ""
    if fix.startswith("opsctl "):
        return f'<span class="fix"><code>{escape(fix)}</code></span>'
    return f'<span class="fix">{escape(fix)}</span>'


def render_html(document: dict[str, Any], titles: Mapping[str, tuple[str, str]]) -> str:
    """The report for an opsctl-check/1 document; `titles` maps check id → (zh, en)."""
    targets = document.get("targets", [])
    parts = [
        "<!DOCTYPE html>",
        '<html lang="zh-CN"><head><meta charset="utf-8">',
        "<title>等级保护合规检查报告 Graded-protection compliance report</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>网络安全等级保护 合规检查报告<br>"
        "<small>Graded-protection (GB/T 22239-2019) compliance report</small></h1>",
        f'<p class="meta">等级 level {escape(str(document.get("level", "")))} · '
        f'开始 started {escape(str(document.get("started", "")))} · '
        f'用时 {float(document.get("seconds", 0)):.2f} s · '
        f'检查项 checks evaluated {escape(str(document.get("checks_evaluated", "")))} '
        f'/ catalog {escape(str(document.get("catalog_checks", "")))} · '
        f'schema <code>{escape(str(document.get("schema", "")))}</code></p>',
        '<p class="meta">结论按 GB/T 28448-2019 测评单元给出'
        "（符合 / 部分符合 / 不符合 / 人工核查 / 未测 / 不适用）："
        "有检查项无法判定且无不通过项时为人工核查，全部无法判定时为未测；"
        "不计算总分；列出重大风险隐患。"
        "<span class=\"en\">Verdicts per GB/T 28448-2019 test unit; a unit whose checks could "
        "not all be evaluated (and none failed) is left to manual verification, or not tested "
        "when none could; no score is computed; major-risk triggers are listed.</span></p>",
    ]
    parts += _summary_by_target(targets)
    parts += _exceptions(document.get("exceptions", []))
    parts += _summary_by_clause(targets)
    for target in targets:
        parts += _target_section(target, titles)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _summary_by_target(targets: list[dict[str, Any]]) -> list[str]:
    rows = []
    for t in targets:
        c = t.get("counts", {})
        under = set(t.get("major_risks_under_exception", []))
        risks = ", ".join(r + (" (例外 under exception)" if r in under else "")
                          for r in t.get("major_risks", [])) or "—"
        rows.append(
            f'<tr><td><a href="#t-{escape(t["name"])}">{escape(t["name"])}</a></td>'
            f'<td>{escape(t.get("scope", ""))}</td>'
            + "".join(f'<td class="num s-{s}">{c.get(s, 0)}</td>' for s in COUNTED)
            + f'<td class="{"risk" if t.get("major_risks") else ""}">{escape(risks)}</td></tr>')
    return ["<h2>概况 <small>Summary by host</small></h2>",
            '<table class="summary"><thead><tr><th>对象 target</th><th>范围 scope</th>'
            "<th>通过 pass</th><th>不通过 fail</th><th>不适用 n/a</th><th>无法判定 error</th>"
            "<th>例外 exception</th><th>重大风险隐患 major-risk triggers</th></tr></thead><tbody>",
            *rows, "</tbody></table>"]


def _exceptions(entries: list[dict[str, Any]]) -> list[str]:
    """The site's documented exceptions and their use in this scan."""
    if not entries:
        return []
    rows = []
    for e in entries:
        hosts = e["hosts"] if e["hosts"] == "all" else ", ".join(e["hosts"])
        used = {"applied": ", ".join(e.get("applied_to", [])),
                "expired": ", ".join(e.get("failing_on", [])),
                "unused": ""}.get(e["state"], "")
        rows.append(
            f'<tr><td class="{"s-fail" if e["state"] == "expired" else ""}">'
            f'{escape(EXCEPTION_STATE.get(e["state"], e["state"]))}</td>'
            f'<td><code>{escape(e["check"])}</code></td><td>{escape(hosts)}</td>'
            f'<td>{escape(used) or "—"}</td><td>{escape(e.get("reason", ""))}</td>'
            f'<td>{escape(e.get("compensating_control", ""))}</td>'
            f'<td>{escape(e.get("approver", ""))}</td><td>{escape(e.get("expires", ""))}</td></tr>')
    return ["<h2>例外 <small>The site's documented exceptions</small></h2>",
            '<p class="meta">例外不等于符合：受例外覆盖的不通过项标为“例外”，'
            "所在测评单元为人工核查，由测评人员判定补偿措施。"
            "<span class=\"en\">An exception is never a pass: a failing "
            "check it covers is shown as an exception and its unit is left to the assessor, who "
            "judges the compensating control. An expired exception does not apply.</span></p>",
            '<table class="exceptions"><thead><tr><th>状态 state</th><th>检查项 check</th>'
            "<th>范围 hosts</th><th>适用于 applied to</th><th>理由 reason</th>"
            "<th>补偿措施 compensating control</th><th>批准人 approver</th>"
            "<th>有效期至 expires</th></tr></thead><tbody>", *rows, "</tbody></table>"]


def _summary_by_clause(targets: list[dict[str, Any]]) -> list[str]:
    units: dict[str, str] = {}
    verdicts: dict[tuple[str, str], str] = {}
    for t in targets:
        for u in t.get("units", []):
            units.setdefault(u["unit"], u.get("clause", ""))
            verdicts[(u["unit"], t["name"])] = u["verdict"]
    names = [t["name"] for t in targets]
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    rows = []
    for unit in sorted(units, key=_unit_key):
        cells = "".join(
            f"<td>{_verdict(verdicts[(unit, n)]) if (unit, n) in verdicts else '—'}</td>"
            for n in names)
        rows.append(f"<tr><td>{escape(unit)}</td><td>{escape(units[unit])}</td>{cells}</tr>")
    return ["<h2>按条款汇总 <small>Summary by clause and test unit</small></h2>",
            f'<table class="units"><thead><tr><th>测评单元 unit</th><th>条款 clause</th>{head}'
            "</tr></thead><tbody>", *rows, "</tbody></table>"]


def _unit_key(unit: str) -> tuple[str, int]:
    prefix, _, number = unit.rpartition("-")
    return (prefix, int(number)) if number.isdigit() else (unit, 0)


def _target_section(target: dict[str, Any], titles: Mapping[str, tuple[str, str]]) -> list[str]:
    name = escape(target["name"])
    c = target.get("counts", {})
    out = [f'<section class="host" id="t-{name}"><h2>{name} '
           f'<small>{escape(target.get("scope", ""))} · '
           + " · ".join(f"{STATUS_LABEL[s][0]} {c.get(s, 0)}" for s in COUNTED)
           + "</small></h2>"]
    if target.get("error"):
        out.append(f'<p class="s-error">未能检查 not scanned: {escape(target["error"])}</p>')
    if target.get("major_risks"):
        under = set(target.get("major_risks_under_exception", []))
        out.append('<p class="risk">重大风险隐患 major-risk triggers: ' + escape(", ".join(
            r + (" (例外 under exception)" if r in under else "")
            for r in target["major_risks"])) + "</p>")
    checks = sorted(target.get("checks", []), key=lambda ch: (
        STATUS_ORDER.get(ch["status"], 9), ch.get("unit", ""), ch["id"]))
    findings = [ch for ch in checks if ch["status"] in (FAIL, ERROR, EXCEPTION)]
    rest = [ch for ch in checks if ch["status"] not in (FAIL, ERROR, EXCEPTION)]
    out.append(_check_table(f"问题 findings ({len(findings)})", findings, titles, open_=True))
    out.append(_manual_units(target.get("units", [])))
    out.append(_check_table(f"其他检查项 other checks ({len(rest)})", rest, titles, open_=False))
    out.append("</section>")
    return out


def _manual_units(units: list[dict[str, Any]]) -> str:
    """Units left to the assessor (人工核查), each with the steps to verify by hand: the evidence
    to collect, and the checks that could not be evaluated here."""
    manual = [u for u in units if u.get("verdict") == "人工核查"]
    if not manual:
        return ""
    rows = "".join(
        f"<tr><td>{escape(u['unit'])}<br><span class=\"en\">{escape(u.get('clause', ''))}"
        f"</span></td><td>{escape(u.get('title_zh', ''))}<br><span class=\"en\">"
        f"{escape(u.get('title_en', ''))}</span></td><td><ul class=\"evidence\">"
        + "".join(_manual_step(s) for s in u.get("steps", [])
                  if s.get("status") in ("manual", "not_evaluated", EXCEPTION))
        + "</ul></td></tr>" for u in manual)
    return (f"<details><summary>人工核查 manual verification ({len(manual)})</summary>"
            "<table class=\"manual\"><thead><tr><th>测评单元 unit</th><th>要求 requirement</th>"
            "<th>待核查步骤 steps to verify</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></details>")


def _manual_step(step: dict[str, Any]) -> str:
    text = escape(step.get("examine", ""))
    if step.get("manual"):
        text += f"：{escape(step['manual'])}"
    pending = [c for c, status in step.get("checks", {}).items() if status != PASS]
    excepted = [c for c, status in step.get("checks", {}).items() if status == EXCEPTION]
    if excepted:
        text += (" <span class=\"s-exception\">例外 <span class=\"en\">exception</span></span> "
                 "<span class=\"en\">judge the compensating control: "
                 + ", ".join(f"<code>{escape(c)}</code>" for c in excepted) + "</span>")
    elif step.get("status") == "not_evaluated" and pending:
        text += (" <span class=\"en\">not evaluated here: "
                 + ", ".join(f"<code>{escape(c)}</code>" for c in pending) + "</span>")
    return f"<li>{text}</li>"


def _check_table(label: str, checks: list[dict[str, Any]],
                 titles: Mapping[str, tuple[str, str]], open_: bool) -> str:
    if not checks:
        return f"<p class=\"meta\">{escape(label)}</p>"
    rows = "".join(
        f"<tr><td>{_status(ch['status'], ch.get('kind', ''))}</td>"
        f"<td>{_title(ch['id'], titles)}</td>"
        f"<td>{escape(ch.get('clause', ''))}<br><span class=\"en\">{escape(ch.get('unit', ''))}"
        f"</span></td><td>{escape(SEVERITY_LABEL.get(ch.get('severity', ''), ''))}"
        f"{' <span class=risk>⚠</span>' if ch.get('major_risk') else ''}</td>"
        f"<td>{_evidence(ch)}</td><td>{_fix(ch)}</td></tr>"
        for ch in checks)
    return (f"<details{' open' if open_ else ''}><summary>{escape(label)}</summary>"
            "<table><thead><tr><th>结果 result</th><th>检查项 check</th><th>条款 clause</th>"
            "<th>严重性 severity</th><th>证据 evidence</th><th>整改 remediation</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></details>")
