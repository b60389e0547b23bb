"""What changed between two scans (two opsctl-check/1 documents): pure, except `load_scan`,
which reads one document from a file and refuses, naming the file, what is not one."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from opsctl.errors import InvalidInput, Problem
from security.evaluate import NA, PASS, RESULT_SCHEMA

GOOD = (PASS, NA)  # a change between these two is neither a fix nor a regression


@dataclass(frozen=True)
class Change:
    target: str
    check: str
    old: str | None  # None: the check (or target) was not in the old scan
    new: str | None
    reason: str  # the new result's reason (the old one's when the check went away)

    @property
    def kind(self) -> str:
        if self.old is None:
            return "added"
        if self.new is None:
            return "removed"
        if self.new in GOOD and self.old not in GOOD:
            return "fixed"
        if self.old in GOOD and self.new not in GOOD:
            return "regressed"
        return "changed"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kind": self.kind}


@dataclass(frozen=True)
class ScanDiff:
    changes: list[Change]
    unchanged: int

    def count(self, kind: str) -> int:
        return sum(c.kind == kind for c in self.changes)

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.kind == "regressed"]

    def as_dict(self) -> dict[str, Any]:
        kinds = ("fixed", "regressed", "changed", "added", "removed")
        return {"summary": {k: self.count(k) for k in kinds} | {"unchanged": self.unchanged},
                "changes": [c.as_dict() for c in self.changes]}


def check_document(doc: Any, where: str) -> dict[str, Any]:
    """`doc` when it is a scan document with the shape diff_scans reads, else InvalidInput."""
    if not isinstance(doc, dict) or doc.get("schema") != RESULT_SCHEMA:
        raise InvalidInput([Problem(where, "schema", f"not an {RESULT_SCHEMA} document "
                                    "(made by `opsctl check --format json`)")])
    problems = _shape_problems(doc, where)
    if problems:
        raise InvalidInput(problems[:1])  # one line: the first thing that is not a scan's
    return doc


def _shape_problems(doc: dict[str, Any], where: str) -> list[Problem]:
    targets = doc.get("targets", [])
    if not isinstance(targets, list):
        return [Problem(where, "targets", "expected a list of targets")]
    for i, target in enumerate(targets):
        at = f"targets[{i}]"
        if not isinstance(target, dict) or not isinstance(target.get("name"), str):
            return [Problem(where, at, "expected a target with a name")]
        checks = target.get("checks", [])
        if not isinstance(checks, list):
            return [Problem(where, f"{at}.checks", "expected a list of results")]
        for j, check in enumerate(checks):
            if not isinstance(check, dict) or not all(
                    isinstance(check.get(k), str) for k in ("id", "status")):
                return [Problem(where, f"{at}.checks[{j}]",
                                "expected a result with an id and a status")]
    return []


def load_scan(path: Path) -> dict[str, Any]:
    """A scan document from a file `opsctl check --format json` wrote; InvalidInput naming the
    file when it cannot be read, is empty, is not JSON or is not a scan."""
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidInput([Problem(where, "", "not UTF-8 text, expected a JSON document")]
                           ) from None
    except OSError as exc:
        raise InvalidInput([Problem(where, "", f"cannot read: {exc.strerror or exc}")]) from None
    if not text.strip():
        raise InvalidInput([Problem(where, "(root)", "file is empty, expected an "
                                    f"{RESULT_SCHEMA} document")])
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput([Problem(where, f"line {exc.lineno} column {exc.colno}",
                                    f"malformed JSON: {exc.msg}")]) from None
    return check_document(doc, where)


def _results(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(t["name"], c["id"]): c for t in doc.get("targets", []) for c in t.get("checks", [])}


def diff_scans(old: dict[str, Any], new: dict[str, Any]) -> ScanDiff:
    before, after = _results(old), _results(new)
    changes, unchanged = [], 0
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if a and b and a["status"] == b["status"]:
            unchanged += 1
            continue
        changes.append(Change(key[0], key[1], a and a["status"], b and b["status"],
                              (b or a or {}).get("reason", "")))
    return ScanDiff(changes, unchanged)
