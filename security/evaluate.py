"""The evaluator: facts in, results out. Pure functions, no I/O beyond the catalog's data files.

Per check: pass / fail / not_applicable / error, with the evidence (the value found and where
it came from). Per GB/T 28448-2019 test unit and host: the assessor's verdict 符合 / 部分符合 /
不符合 / 人工核查 / 未测 / 不适用, and the major-risk triggers hit. No headline score is computed.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from security import facts as factreg
from security.exceptions import APPLIED, EXPIRED, UNUSED, ExceptionEntry
from security.schema import AllOf, AnyOf, CatalogCheck, Condition, Leaf
from security.units import Step, Unit, Units, default_units

RESULT_SCHEMA = "opsctl-check/1"
PASS, FAIL, NA, ERROR = "pass", "fail", "not_applicable", "error"
# A failing check the site's documented exception covers: never a pass (security/exceptions.py).
EXCEPTION = "exception"
CONFORM, PARTIAL, NONCONFORM, NOT_APPLICABLE = "符合", "部分符合", "不符合", "不适用"
# The evidence does not decide the unit: some checks could not be evaluated and none failed
# (an assessor verifies those by hand), or none could be evaluated at all.
MANUAL, NOT_TESTED = "人工核查", "未测"
VERDICT_EN = {CONFORM: "conformant", PARTIAL: "partially conformant",
              NONCONFORM: "non-conformant", NOT_APPLICABLE: "not applicable",
              MANUAL: "manual verification needed", NOT_TESTED: "not tested"}
SEVERITY_RANK = {"low": 1, "medium": 2, "high": 3}
NOT_TESTED_KIND = "not_tested"
EVIDENCE_ELSEWHERE_KIND = "evidence_elsewhere"
# A step's status beyond a check's: its checks were not (all) evaluated, or it needs the assessor.
NOT_EVALUATED, STEP_MANUAL = "not_evaluated", "manual"


class FactUnavailable(Exception):
    """A fact the check needs could not be gathered; the message says why."""


@dataclass(frozen=True)
class Evidence:
    fact: str
    found: Any
    where: str
    expected: str
    ok: bool | None  # None: the fact could not be read
    # a check's note (`notes:` in its file): shown with the result, never deciding it
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.note is None:
            del data["note"]
        return data


@dataclass(frozen=True)
class CheckResult:
    id: str
    status: str
    reason: str
    clause: str
    unit: str
    severity: str
    major_risk: bool
    evidence: tuple[Evidence, ...] = ()
    remediation: str = ""
    # for a not_applicable result: not_applicable (no such requirement here) or not_tested
    # (the requirement exists, this host cannot show it: the unit goes to the assessor)
    kind: str = ""
    # the site's exception for this check on this target: reason, compensating_control,
    # approver, expires and state (applied, or expired: then the status stays fail)
    exception: dict[str, str] | None = None
    # how an assessor verifies the check by hand (the check's manual_verification): every
    # verdict carries it, so the report tells how to confirm what the scan claims
    manual_verification: str = ""
    # evidence_elsewhere: the hosts whose result for this check answers it here
    evidence_on: tuple[str, ...] = ()

    @property
    def not_evaluated(self) -> bool:
        """No evidence either way: could not be read, could not be tested here, or held by
        another host that this scan did not follow."""
        return self.status == ERROR or (
            self.status == NA and self.kind in (NOT_TESTED_KIND, EVIDENCE_ELSEWHERE_KIND))

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["evidence"] = [e.as_dict() for e in self.evidence]
        return data


@dataclass(frozen=True)
class StepResult:
    """One test step of a unit on one target: which checks evidence it, or what the assessor
    collects by hand, and what that evidence showed."""

    examine: str
    examine_en: str | None
    object: str
    status: str  # pass / fail / not_evaluated / manual / not_applicable
    checks: dict[str, str]  # check id → status (not_evaluated: not part of this scan)
    manual: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class UnitVerdict:
    unit: str
    clause: str
    verdict: str
    checks: dict[str, str]  # check id → status
    # checks in error or not testable here: the verdict could not use them
    incomplete: tuple[str, ...] = ()
    title_zh: str = ""
    title_en: str = ""
    steps: tuple[StepResult, ...] = ()
    # checks of the unit whose failure the site's exception covers: the assessor judges them
    exceptions: tuple[str, ...] = ()

    @property
    def manual_steps(self) -> list[StepResult]:
        return [s for s in self.steps if s.manual and s.status != NA]

    def as_dict(self) -> dict[str, Any]:
        return {"unit": self.unit, "clause": self.clause, "title_zh": self.title_zh,
                "title_en": self.title_en, "verdict": self.verdict,
                "verdict_en": VERDICT_EN[self.verdict], "checks": self.checks,
                "incomplete": list(self.incomplete), "exceptions": list(self.exceptions),
                "steps": [s.as_dict() for s in self.steps]}


@dataclass
class TargetResult:
    """One host's (or the site network's) results."""

    name: str
    scope: str
    results: list[CheckResult]
    units: list[UnitVerdict] = field(default_factory=list)
    error: str | None = None  # the host could not be scanned at all

    @property
    def major_risks(self) -> list[str]:
        """Major-risk triggers hit, including those under the site's exception (listed too in
        major_risks_under_exception): an exception does not make a trigger go away."""
        return [r.id for r in self.results if r.major_risk and r.status in (FAIL, EXCEPTION)]

    @property
    def major_risks_under_exception(self) -> list[str]:
        return [r.id for r in self.results if r.major_risk and r.status == EXCEPTION]

    def counts(self) -> dict[str, int]:
        out = {PASS: 0, FAIL: 0, NA: 0, ERROR: 0, EXCEPTION: 0}
        for r in self.results:
            out[r.status] += 1
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "scope": self.scope, "error": self.error,
                "counts": self.counts(), "major_risks": self.major_risks,
                "major_risks_under_exception": self.major_risks_under_exception,
                "units": [u.as_dict() for u in self.units],
                "checks": [r.as_dict() for r in self.results]}


# ---------------------------------------------------------------- reading facts

def resolve(facts: dict[str, Any], path: str) -> Any:
    """The value at a fact path, None when the key is absent; FactUnavailable on an error."""
    group, _, rest = path.partition(".")
    if group not in facts:
        raise FactUnavailable(f"fact group {group!r} was not collected")
    node = facts[group]
    if _is_error(node):
        raise FactUnavailable(node["error"])
    while rest:
        if not isinstance(node, dict):
            return None
        key = next((k for k in sorted(node, key=len, reverse=True)
                    if rest == k or rest.startswith(k + ".")), None)
        if key is None:
            return None
        node = node[key]
        rest = rest[len(key) + 1:]
        if _is_error(node):
            raise FactUnavailable(node["error"])
    return node


def _is_error(node: object) -> bool:
    return isinstance(node, dict) and set(node) == {"error"}


def _where(path: str) -> str:
    group, key, _ = factreg.split_path(path)
    spec = factreg.GROUPS.get(group)
    source = spec.source if spec else group
    if group == "files" and key:
        return f"stat {key}"
    if group == "sysctl" and key:
        return f"/proc/sys/{key.replace('.', '/')}"
    return source


# ---------------------------------------------------------------- operators

def _norm(v: Any) -> Any:
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, int | float):
        return v
    s = str(v).strip()
    if re.fullmatch(r"-?\d+", s):
        return int(s)
    return s.lower()


def _as_list(v: Any) -> list[Any]:
    if v is None:
        return []
    if isinstance(v, list | tuple | set):
        return list(v)
    if isinstance(v, dict):
        return list(v)
    return [v]


def _number(v: Any) -> float | None:
    n = _norm(v)
    return float(n) if isinstance(n, int | float) and not isinstance(n, bool) else None


def _contains(found: Any, item: Any) -> bool:
    if isinstance(found, str):
        return str(item).lower() in found.lower()
    return _norm(item) in [_norm(x) for x in _as_list(found)]


def op_eq(found: Any, value: Any) -> bool:
    return _norm(found) == _norm(value)


def op_ne(found: Any, value: Any) -> bool:
    return not op_eq(found, value)


def op_in(found: Any, value: list[Any]) -> bool:
    return _norm(found) in [_norm(v) for v in value]


def op_not_in(found: Any, value: list[Any]) -> bool:
    return not op_in(found, value)


def op_ge(found: Any, value: Any) -> bool:
    n = _number(found)
    return n is not None and n >= float(value)


def op_le(found: Any, value: Any) -> bool:
    n = _number(found)
    return n is not None and n <= float(value)


def op_contains(found: Any, value: Any) -> bool:
    return all(_contains(found, v) for v in _as_list(value))


def op_not_contains(found: Any, value: Any) -> bool:
    return not any(_contains(found, v) for v in _as_list(value))


def op_matches(found: Any, value: str) -> bool:
    text = "\n".join(str(x) for x in found) if isinstance(found, list) else \
        ("" if found is None else str(found))
    return re.search(value, text, re.MULTILINE) is not None


def op_empty(found: Any, _value: Any = None) -> bool:
    return found is None or (hasattr(found, "__len__") and len(found) == 0)


def op_not_empty(found: Any, _value: Any = None) -> bool:
    return not op_empty(found)


def op_subset_of(found: Any, value: list[Any]) -> bool:
    allowed = {_norm(v) for v in value}
    return all(_norm(x) in allowed for x in _as_list(found))


def op_mode_max(found: Any, value: Any) -> bool:
    if found is None:
        return False
    return int(str(found), 8) & ~int(str(value), 8) == 0


OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": op_eq, "ne": op_ne, "in": op_in, "not_in": op_not_in, "ge": op_ge, "le": op_le,
    "contains": op_contains, "not_contains": op_not_contains, "matches": op_matches,
    "empty": op_empty, "not_empty": op_not_empty, "subset_of": op_subset_of,
    "mode_max": op_mode_max,
}


def _describe(leaf: Leaf, value: Any) -> str:
    if leaf.op in ("empty", "not_empty"):
        return leaf.op.replace("_", " ")
    if leaf.op == "mode_max":
        return f"mode at most {value}"
    return f"{leaf.op} {value}"


def _shown(leaf: Leaf, found: Any, value: Any) -> Any:
    """What the evidence shows as found: never a whole package list."""
    if leaf.op in ("contains", "not_contains") and isinstance(found, dict | list) \
            and not isinstance(value, dict):
        wanted = _as_list(value)
        have = {_norm(x) for x in _as_list(found)}
        if leaf.op == "contains":
            return {"missing": [v for v in wanted if _norm(v) not in have]}
        return {"present": [v for v in wanted if _norm(v) in have]}
    if isinstance(found, dict) and len(found) > 20:
        return f"{len(found)} entries"
    if isinstance(found, str) and len(found) > 400:
        return found[:400] + "…"
    return found


# ---------------------------------------------------------------- conditions

def eval_leaf(leaf: Leaf, facts: dict[str, Any]) -> tuple[bool | None, Evidence]:
    value = leaf.value
    try:
        found = resolve(facts, leaf.fact)
        if isinstance(value, dict) and set(value) == {"fact"}:
            value = resolve(facts, value["fact"])
            if value is None:
                value = []
    except FactUnavailable as exc:
        return None, Evidence(leaf.fact, None, f"{leaf.fact.split('.')[0]}: {exc}",
                              _describe(leaf, value), None)
    ok = OPERATORS[leaf.op](found, value)
    return ok, Evidence(leaf.fact, _shown(leaf, found, value), _where(leaf.fact),
                        _describe(leaf, value), ok)


def eval_condition(cond: Condition, facts: dict[str, Any]) -> tuple[bool | None, list[Evidence]]:
    """Three-valued: True, False, or None when a needed fact could not be read."""
    if isinstance(cond, Leaf):
        ok, ev = eval_leaf(cond, facts)
        return ok, [ev]
    parts = [eval_condition(c, facts) for c in
             (cond.all_of if isinstance(cond, AllOf) else cond.any_of)]
    evidence = [e for _, evs in parts for e in evs]
    oks = [ok for ok, _ in parts]
    if isinstance(cond, AnyOf):
        if any(ok is True for ok in oks):
            return True, evidence
        return (None if any(ok is None for ok in oks) else False), evidence
    if any(ok is False for ok in oks):
        return False, evidence
    return (None if any(ok is None for ok in oks) else True), evidence


NOTE_EXPECTED = "shown with the result; does not decide it"


def notes(check: CatalogCheck, facts: dict[str, Any]) -> list[Evidence]:
    """The check's notes whose fact is set on this target (unreadable or unset: none)."""
    out = []
    for note in check.spec.notes:
        try:
            found = resolve(facts, note.fact)
        except FactUnavailable:
            continue
        if found is None or found is False or found in ("", [], {}):
            continue
        out.append(Evidence(note.fact, found, _where(note.fact), NOTE_EXPECTED, True,
                            f"{note.says}: {found}"))
    return out


def evaluate_check(check: CatalogCheck, facts: dict[str, Any]) -> CheckResult:
    spec = check.spec
    remediation = spec.remediation.command
    noted = notes(check, facts)

    def result(status: str, reason: str, evidence: Iterable[Evidence] = (),
               kind: str = "", evidence_on: tuple[str, ...] = ()) -> CheckResult:
        reason = "; ".join(part for part in (reason, *(n.note for n in noted)) if part)
        return CheckResult(spec.id, status, reason, check.clause, check.unit, spec.severity,
                           spec.major_risk, (*evidence, *noted), remediation, kind,
                           manual_verification=spec.manual_verification,
                           evidence_on=evidence_on)

    for na in spec.not_applicable_when:
        ok, ev = eval_leaf(na, facts)
        if ok is None:
            return result(ERROR, f"cannot tell whether the check applies: {ev.where}", [ev])
        if ok:
            reason = na.reason
            if na.reason_fact:
                try:
                    extra = resolve(facts, na.reason_fact)
                except FactUnavailable as exc:
                    extra = str(exc)
                if isinstance(extra, list):
                    extra = ", ".join(str(x) for x in extra)
                if extra:
                    reason = f"{reason}: {extra}"
            hosts = () if na.elsewhere is None else _host_names(facts, na.elsewhere)
            return result(NA, reason, [ev], na.kind, hosts)
    ok, evidence = eval_condition(spec.pass_, facts)
    if ok is None:
        errors = "; ".join(dict.fromkeys(e.where for e in evidence if e.ok is None))
        return result(ERROR, errors, evidence)
    if ok:
        return result(PASS, "", evidence)
    failed = [e for e in evidence if e.ok is False]
    reason = "; ".join(f"{e.fact} is {_brief(e.found)}, expected {e.expected}" for e in failed)
    return result(FAIL, reason, evidence)


def _host_names(facts: dict[str, Any], path: str) -> tuple[str, ...]:
    try:
        return tuple(str(h) for h in _as_list(resolve(facts, path)))
    except FactUnavailable:
        return ()


def _brief(v: Any) -> str:
    text = repr(v) if not isinstance(v, str) else v
    if v is None:
        return "not set"
    return text if len(text) <= 120 else text[:117] + "..."


# ---------------------------------------------------------------- aggregation

def unit_verdicts(results: list[CheckResult], scope: str,
                  units: Units | None = None) -> list[UnitVerdict]:
    """The assessor's verdict for every unit with a step judged on a target of this scope.

    A unit is judged by its steps (catalog/units.yml): 符合 only when every step is covered by
    passing checks. A step's check missing from `results` (another level's) is not evaluated.
    """
    spec = units if units is not None else default_units()
    by_id = {r.id: r for r in results}
    return [_unit_verdict(unit, steps, by_id) for unit, steps in spec.for_scope(scope)]


def _unit_verdict(unit: Unit, steps: list[Step],
                  by_id: dict[str, CheckResult]) -> UnitVerdict:
    judged = [_step_result(unit, s, by_id) for s in steps]
    applicable = [s for s in judged if s.status != NA]
    used = {cid: by_id.get(cid) for s in applicable for cid in s.checks}
    # a check not testable here, or not in this scan, weighs as one that could not be read
    statuses = [ERROR if r is None or r.not_evaluated else r.status for r in used.values()]
    major = any(r is not None and r.major_risk and r.status == FAIL for r in used.values())
    manual = any(s.manual for s in applicable)
    return UnitVerdict(unit.id, unit.clause, verdict(statuses, major, manual),
                       {s_id: _status_of(by_id.get(s_id)) for s in judged for s_id in s.checks},
                       tuple(cid for cid, r in used.items() if r is None or r.not_evaluated),
                       unit.title_zh, unit.title_en, tuple(judged),
                       tuple(cid for cid, r in used.items()
                             if r is not None and r.status == EXCEPTION))


def _status_of(result: CheckResult | None) -> str:
    return NOT_EVALUATED if result is None else result.status


def _step_result(unit: Unit, step: Step, by_id: dict[str, CheckResult]) -> StepResult:
    found = [by_id.get(cid) for cid in step.checks]
    if any(r is not None and r.status == FAIL for r in found):
        status = FAIL
    elif any(r is None or r.not_evaluated for r in found):
        status = NOT_EVALUATED
    elif any(r is not None and r.status == EXCEPTION for r in found):
        status = EXCEPTION  # the assessor judges the site's compensating control
    elif found and all(r is not None and r.status == NA for r in found):
        status = NA  # the requirement this step examines does not exist on this object
    else:
        status = STEP_MANUAL if step.manual else PASS
    return StepResult(step.examine, step.examine_en, unit.step_object(step), status,
                      {cid: _status_of(r) for cid, r in zip(step.checks, found, strict=True)},
                      step.manual)


def verdict(statuses: list[str], major_risk_failed: bool = False, manual: bool = False) -> str:
    """A unit's verdict from its checks' statuses; it never claims more than they show.

    `manual`: a step of the unit needs evidence an assessor collects by hand. 符合 only when
    every applicable check passed and no step is manual. A failure decides against the unit:
    不符合 when nothing passed or a major-risk trigger failed, else 部分符合. Without a
    failure, a manual step or a check that could not be evaluated leaves the unit to the
    assessor: 人工核查 when something passed or a step is manual, 未测 when nothing could be
    evaluated. 不适用 when no check applies and no step is manual. A check under the site's
    documented exception (and no failure) makes the unit 人工核查, never 符合: the assessor
    judges the compensating control.
    """
    applicable = [s for s in statuses if s != NA]
    if not applicable and not manual:
        return NOT_APPLICABLE
    passed = applicable.count(PASS)
    if FAIL in applicable:
        return NONCONFORM if passed == 0 or major_risk_failed else PARTIAL
    if EXCEPTION in applicable:
        return MANUAL
    if manual or ERROR in applicable:
        return MANUAL if passed or manual else NOT_TESTED
    return CONFORM


def evaluate_target(name: str, scope: str, checks: list[CatalogCheck],
                    facts: dict[str, Any], units: Units | None = None) -> TargetResult:
    mine = [c for c in checks if c.spec.scope == scope]
    results = [evaluate_check(c, facts) for c in mine]
    return TargetResult(name, scope, results, unit_verdicts(results, scope, units))


# ---------------------------------------------------------------- evidence on other hosts

def follow_evidence(targets: list[TargetResult],
                    units: Units | None = None) -> list[TargetResult]:
    """Results whose evidence another host holds, answered by that host's result for the
    same check (a database's backups judged where its repository is), units judged again.

    The followed result keeps the host's own reason first and names whose evidence decided
    it; failure on any holder fails it, an error or a holder outside the scan leaves it not
    evaluated (never passed)."""
    index = {(t.name, r.id): r for t in targets for r in t.results}
    out = []
    for target in targets:
        followed = [_follow(r, index) if r.status == NA and r.kind == EVIDENCE_ELSEWHERE_KIND
                    else r for r in target.results]
        if followed == target.results:
            out.append(target)
        else:
            out.append(replace(target, results=followed,
                               units=unit_verdicts(followed, target.scope, units)))
    return out


def _follow(own: CheckResult, index: dict[tuple[str, str], CheckResult]) -> CheckResult:
    held = {h: index.get((h, own.id)) for h in own.evidence_on}
    missing = [h for h, r in held.items() if r is None]
    if not held or missing:
        return replace(own, reason=f"{own.reason}; not in this scan: "
                       f"{', '.join(missing) or 'no host named'}")
    results = list(held.values())
    statuses = [ERROR if r.not_evaluated else r.status for r in results]
    status = next((s for s in (FAIL, ERROR, EXCEPTION, PASS) if s in statuses), NA)
    if status == NA:  # no holder has the requirement either: nothing answers it
        status = ERROR
    said = "; ".join(f"{h}: {r.status}" + (f" ({r.reason})" if r.reason else "")
                     for h, r in held.items())
    evidence = tuple(replace(e, where=f"{h}: {e.where}")
                     for h, r in held.items() for e in r.evidence)
    return replace(own, status=status, reason=f"{own.reason}; {said}",
                   evidence=(*own.evidence, *evidence))


# ---------------------------------------------------------------- the site's exceptions

def apply_exceptions(target: TargetResult, exceptions: Iterable[ExceptionEntry],
                     today: dt.date, units: Units | None = None) -> TargetResult:
    """The target with the site's exceptions applied, and its units judged again.

    A failing check covered by an unexpired exception becomes `exception`, keeping its evidence
    and reason; an expired one leaves it failing and says when the exception expired. Other
    statuses are untouched (a passing check leaves the exception unused)."""
    mine = {e.check: e for e in exceptions if e.covers(target.name)}
    if not mine:
        return target
    results = []
    for r in target.results:
        entry = mine.get(r.id)
        if entry is None or r.status != FAIL:
            results.append(r)
        elif entry.expired(today):
            results.append(replace(r, reason=f"{r.reason}; the site's exception expired on "
                                   f"{entry.expires.isoformat()}",
                                   exception=entry.details(EXPIRED)))
        else:
            results.append(replace(r, status=EXCEPTION, exception=entry.details(APPLIED)))
    return replace(target, results=results,
                   units=unit_verdicts(results, target.scope, units))


def exception_report(targets: list[TargetResult], exceptions: Iterable[ExceptionEntry],
                     today: dt.date) -> list[dict[str, Any]]:
    """Every exception of the site and its use in this scan: applied (a failure it covers),
    expired (it no longer applies, whatever the check showed), or unused (nothing it covers
    failed: the site can retire it). `unused_on`: covered targets where the check passed."""
    out = []
    for entry in exceptions:
        applied, passed = [], []
        for t in targets:
            if not entry.covers(t.name):
                continue
            for r in t.results:
                if r.id != entry.check:
                    continue
                if r.status == EXCEPTION or (r.status == FAIL and r.exception):
                    applied.append(t.name)
                elif r.status == PASS:
                    passed.append(t.name)
        state = EXPIRED if entry.expired(today) else (APPLIED if applied else UNUSED)
        out.append({**entry.as_dict(), "state": state,
                    "applied_to": [] if state == EXPIRED else applied,
                    "failing_on": applied if state == EXPIRED else [],
                    "unused_on": passed})
    return out


def unreachable_target(name: str, scope: str, checks: list[CatalogCheck],
                       reason: str, units: Units | None = None) -> TargetResult:
    """A host that could not be scanned: every check is error with the reason."""
    mine = [c for c in checks if c.spec.scope == scope]
    results = [CheckResult(c.id, ERROR, reason, c.clause, c.unit, c.spec.severity,
                           c.spec.major_risk, manual_verification=c.spec.manual_verification)
               for c in mine]
    return TargetResult(name, scope, results, unit_verdicts(results, scope, units), error=reason)


def fails_at(targets: list[TargetResult], threshold: str) -> list[tuple[str, str]]:
    """(target, check) pairs that failed at or above a severity ("any": every failure)."""
    rank = 0 if threshold == "any" else SEVERITY_RANK[threshold]
    return [(t.name, r.id) for t in targets for r in t.results
            if r.status == FAIL and SEVERITY_RANK[r.severity] >= rank]


def scan_document(targets: list[TargetResult], level: int, started: str, seconds: float,
                  catalog_size: int,
                  exceptions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The versioned result document (see security/README.md)."""
    return {
        "schema": RESULT_SCHEMA,
        "level": level,
        "started": started,
        "seconds": round(seconds, 3),
        "catalog_checks": catalog_size,
        "checks_evaluated": sum(len(t.results) for t in targets),
        "targets": [t.as_dict() for t in targets],
        # the site's documented exceptions (exception_report): applied / unused / expired
        "exceptions": exceptions or [],
    }
