"""One renderer per output format; each writes a scan to the console it is handed."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console
from rich.table import Table

from opsctl.check.html import render_html
from opsctl.check.junit import render_junit
from opsctl.check.record import HTML_FILE, record_objects, render_record_html, write_record
from opsctl.check.scan import Scan
from opsctl.check.scan import catalog as load_catalog
from opsctl.errors import InvalidInput, Problem
from security.evaluate import ERROR, EXCEPTION, FAIL, NA, PASS, VERDICT_EN

STATUS_STYLE = {PASS: "green", FAIL: "red", NA: "dim", ERROR: "yellow", EXCEPTION: "blue"}
VERDICT_STYLE = {"符合": "green", "部分符合": "yellow", "不符合": "red", "人工核查": "magenta",
                 "未测": "magenta", "不适用": "dim"}


class Renderer(Protocol):
    filename: str  # what `--out DIR` calls its file
    # A format of several files also has write_files(scan, directory) -> the paths written.

    def write(self, scan: Scan, console: Console) -> None: ...


class TableRenderer:
    """Per host: the failing and erroring checks with their evidence, then the unit verdicts."""

    filename = "opsctl-check.txt"

    def write(self, scan: Scan, console: Console) -> None:
        for target in scan.targets:
            counts = target.counts()
            console.print(f"[bold]{target.name}[/bold] ({target.scope}, level {scan.level}): "
                          + ", ".join(f"{counts[s]} {s}"
                                      for s in (PASS, FAIL, NA, ERROR, EXCEPTION)))
            if target.error:
                console.print(f"  [yellow]not scanned: {target.error}[/yellow]")
            findings = Table(title="findings", title_justify="left", show_lines=False)
            findings.add_column("status")
            findings.add_column("check", no_wrap=True)
            for col in ("clause", "severity", "found", "fix", "exception"):
                findings.add_column(col, overflow="fold")
            for r in target.results:
                if r.status in (FAIL, ERROR, EXCEPTION) or r.not_evaluated:
                    # a check not testable on this host is the assessor's to verify by hand
                    shown = "not tested" if r.status == NA else r.status
                    findings.add_row(f"[{STATUS_STYLE[ERROR if r.not_evaluated else r.status]}]"
                                     f"{shown}[/]", r.id,
                                     f"{r.clause} {r.unit}", r.severity, r.reason,
                                     r.remediation, _exception_cell(r.exception))
            if findings.row_count:
                console.print(findings)
            units = Table(title="test units (GB/T 28448-2019)", title_justify="left")
            for col in ("unit", "clause", "verdict", "checks"):
                units.add_column(col)
            for u in target.units:
                style = VERDICT_STYLE[u.verdict]
                tally = ", ".join(f"{n} {s}" for s, n in _tally(u.checks).items())
                units.add_row(u.unit, u.clause,
                              f"[{style}]{u.verdict} {VERDICT_EN[u.verdict]}[/]", tally)
            console.print(units)
            if target.major_risks:
                under = set(target.major_risks_under_exception)
                console.print("[red bold]major-risk triggers (重大风险隐患):[/] " + ", ".join(
                    r + (" (under exception)" if r in under else "")
                    for r in target.major_risks))
        _print_exceptions(scan.document.get("exceptions", []), console)
        console.print(f"{scan.document['checks_evaluated']} checks evaluated in "
                      f"{scan.document['seconds']:.2f}s")


def _exception_cell(exc: dict[str, str] | None) -> str:
    if not exc:
        return ""
    if exc["state"] == "expired":
        return f"[red]exception expired on {exc['expires']}[/]"
    return (f"[blue]例外 exception[/]: {exc['reason']}; compensating control: "
            f"{exc['compensating_control']}; approved by {exc['approver']} "
            f"until {exc['expires']}")


def _print_exceptions(entries: list[dict], console: Console) -> None:
    """The site's exceptions and their use: applied, unused (retire it) or expired."""
    if not entries:
        return
    table = Table(title="site exceptions (例外)", title_justify="left")
    for col in ("state", "check", "hosts", "expires", "approver", "where"):
        table.add_column(col, overflow="fold", no_wrap=col == "check")
    style = {"applied": "blue", "unused": "dim", "expired": "red"}
    for e in entries:
        hosts = e["hosts"] if e["hosts"] == "all" else ", ".join(e["hosts"])
        where = {"applied": "applied to " + ", ".join(e["applied_to"]),
                 "unused": "nothing it covers failed: retire it",
                 "expired": f"expired on {e['expires']}: does not apply"
                 + (" (failing on " + ", ".join(e["failing_on"]) + ")" if e["failing_on"]
                    else "")}[e["state"]]
        table.add_row(f"[{style[e['state']]}]{e['state']}[/]", e["check"], hosts,
                      e["expires"], e["approver"], where)
    console.print(table)


def _tally(checks: dict[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for status in checks.values():
        out[status] = out.get(status, 0) + 1
    return out


class JsonRenderer:
    """The versioned opsctl-check/1 document (security/README.md)."""

    filename = "opsctl-check.json"

    def write(self, scan: Scan, console: Console) -> None:
        console.file.write(json.dumps(scan.document, indent=2, ensure_ascii=False) + "\n")


def check_titles() -> dict[str, tuple[str, str]]:
    """check id → (title_zh, title_en), from the catalog at every level."""
    return {c.id: (c.spec.title_zh, c.spec.title_en) for c in load_catalog()}


class HtmlRenderer:
    """One self-contained HTML report (opsctl/check/html.py)."""

    filename = "opsctl-check.html"

    def write(self, scan: Scan, console: Console) -> None:
        console.file.write(render_html(scan.document, check_titles()))


class JunitRenderer:
    """JUnit XML for CI (opsctl/check/junit.py)."""

    filename = "opsctl-check-junit.xml"

    def write(self, scan: Scan, console: Console) -> None:
        console.file.write(render_junit(scan.document))


class RecordRenderer:
    """The assessor's record sheet (opsctl/check/record.py): with --out, an .xlsx workbook, the
    same rows as an HTML page and the raw evidence bundle with its sha256; without, the page."""

    filename = HTML_FILE

    def write(self, scan: Scan, console: Console) -> None:
        console.file.write(render_record_html(scan.document, record_objects(scan.document)))

    def write_files(self, scan: Scan, directory: Path) -> list[Path]:
        return write_record(scan.document, directory)


RENDERERS: dict[str, type[Renderer]] = {"table": TableRenderer, "json": JsonRenderer,
                                        "html": HtmlRenderer, "junit": JunitRenderer,
                                        "record": RecordRenderer}


def catalog_rows(checks: list[Any]) -> list[dict[str, Any]]:
    return [{
        "id": c.id, "title_zh": c.spec.title_zh, "title_en": c.spec.title_en,
        "scope": c.spec.scope, "clause": c.clause, "clause_level2": c.clause_level2,
        "unit": c.unit, "levels": c.spec.levels, "severity": c.spec.severity,
        "major_risk": c.spec.major_risk,
        "remediation": (c.spec.remediation.tag or c.spec.remediation.command),
    } for c in checks]


def parse_formats(text: str) -> list[str]:
    """`html,junit` → ["html", "junit"]; an unknown name is InvalidInput."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in RENDERERS]
    if unknown or not names:
        raise InvalidInput([Problem("--format", text, "expected a comma-separated list of "
                                    + ", ".join(sorted(RENDERERS)))])
    return list(dict.fromkeys(names))


def check_out_dir(directory: Path) -> None:
    """Refuse, before anything is scanned (and without making anything), an `--out` that
    cannot become a directory to write in: its nearest existing part must be a writable
    directory."""
    there = directory
    while not there.exists() and there != there.parent:
        there = there.parent
    if not there.is_dir():
        reason = f"{there} is not a directory"
    elif not os.access(there, os.W_OK | os.X_OK):
        reason = f"{there} is not writable"
    else:
        return
    raise InvalidInput([Problem("--out", str(directory), reason)])


def write_reports(scan: Scan, formats: list[str], directory: Path) -> list[Path]:
    """Each format into its own file (or files) under `directory` (made when missing); the paths
    written. A directory that cannot be made or written in is InvalidInput naming it."""
    try:
        return _write_reports(scan, formats, directory)
    except OSError as exc:
        raise InvalidInput([Problem("--out", str(directory),
                                    f"cannot write: {exc.strerror or exc}")]) from None


def _write_reports(scan: Scan, formats: list[str], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in formats:
        renderer = RENDERERS[name]()
        several = getattr(renderer, "write_files", None)  # a format of more than one file
        if several is not None:
            written += several(scan, directory)
            continue
        path = directory / renderer.filename
        with path.open("w", encoding="utf-8") as handle:
            renderer.write(scan, Console(file=handle, width=140, color_system=None))
        written.append(path)
    return written
