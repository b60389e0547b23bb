"""JUnit XML for CI systems: one testsuite per target, one testcase per check; a fail is a
<failure>, an error an <error>, not-applicable a <skipped> with its reason, and a failure
under the site's documented exception a <skipped> with the exception (neither pass nor
failure: the assessor judges the compensating control)."""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree as ET

from security.evaluate import ERROR, EXCEPTION, FAIL, NA


def render_junit(document: dict[str, Any]) -> str:
    root = ET.Element("testsuites", name="opsctl check", time=f"{document.get('seconds', 0):.3f}")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for target in document.get("targets", []):
        checks = target.get("checks", [])
        counts = {"tests": len(checks),
                  "failures": sum(c["status"] == FAIL for c in checks),
                  "errors": sum(c["status"] == ERROR for c in checks),
                  "skipped": sum(c["status"] in (NA, EXCEPTION) for c in checks)}
        suite = ET.SubElement(root, "testsuite", name=target["name"],
                              timestamp=str(document.get("started", "")),
                              **{k: str(v) for k, v in counts.items()})
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="scope", value=str(target.get("scope", "")))
        ET.SubElement(props, "property", name="level", value=str(document.get("level", "")))
        for check in checks:
            case = ET.SubElement(suite, "testcase", name=check["id"],
                                 classname=f"{target['name']}.{check.get('unit', '')}")
            detail = _detail(check)
            if check["status"] == FAIL:
                ET.SubElement(case, "failure", message=check.get("reason", ""),
                              type=check.get("severity", "")).text = detail
            elif check["status"] == ERROR:
                ET.SubElement(case, "error", message=check.get("reason", "")).text = detail
            elif check["status"] == NA:
                ET.SubElement(case, "skipped", message=check.get("reason", ""))
            elif check["status"] == EXCEPTION:
                exc = check.get("exception") or {}
                ET.SubElement(case, "skipped", type="exception", message=(
                    f"exception (例外): {exc.get('reason', '')}; compensating control: "
                    f"{exc.get('compensating_control', '')}; approved by "
                    f"{exc.get('approver', '')} until {exc.get('expires', '')}")).text = detail
        for key in totals:
            totals[key] += counts[key]
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _detail(check: dict[str, Any]) -> str:
    lines = [f"clause {check.get('clause', '')} ({check.get('unit', '')}), "
             f"severity {check.get('severity', '')}"
             + (", major-risk trigger" if check.get("major_risk") else "")]
    lines += [f"{e['fact']} = {e.get('found')!r} (expected {e.get('expected')}; {e.get('where')})"
              for e in check.get("evidence", [])]
    if check.get("remediation"):
        lines.append(f"fix: {check['remediation']}")
    return "\n".join(lines)
