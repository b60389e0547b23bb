"""What changed between two scans (two opsctl-check/1 documents): pure, no I/O."""

from __future__ import annotations

from dataclasses import asdict, dataclass
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
    if not isinstance(doc, dict) or doc.get("schema") != RESULT_SCHEMA:
        raise InvalidInput([Problem(where, "schema", f"not an {RESULT_SCHEMA} document "
                                    "(made by `opsctl check --format json`)")])
    return doc


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
