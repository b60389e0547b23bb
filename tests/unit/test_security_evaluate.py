"""The evaluator's operators, fact paths, three-valued logic and per-unit verdicts."""

from __future__ import annotations

import pytest

from security.evaluate import (
    CONFORM,
    ERROR,
    FAIL,
    MANUAL,
    NA,
    NONCONFORM,
    NOT_APPLICABLE,
    NOT_EVALUATED,
    NOT_TESTED,
    OPERATORS,
    PARTIAL,
    PASS,
    RESULT_SCHEMA,
    STEP_MANUAL,
    CheckResult,
    FactUnavailable,
    UnitVerdict,
    eval_condition,
    evaluate_target,
    fails_at,
    resolve,
    scan_document,
    unit_verdicts,
    unreachable_target,
    verdict,
)
from security.schema import AllOf, AnyOf, CatalogCheck, Leaf, load_catalog
from security.units import Units, UnitSpec, default_units
from security.versions import compare_versions


@pytest.mark.parametrize(("op", "found", "value", "expected"), [
    ("eq", "no", "no", True), ("eq", "No", "no", True), ("eq", 90, "90", True),
    ("eq", None, "no", False), ("ne", "yes", "no", True),
    ("in", "prohibit-password", ["no", "prohibit-password"], True), ("in", "yes", ["no"], False),
    ("not_in", "yes", ["no"], True),
    ("ge", 12, 8, True), ("ge", "7", 8, False), ("ge", None, 1, False), ("ge", "abc", 1, False),
    ("le", 90, 90, True), ("le", 99999, 90, False),
    ("contains", ["a", "b"], ["a", "b"], True), ("contains", {"aide": "1"}, "aide", True),
    ("contains", ["a"], ["a", "b"], False), ("contains", "text -w /etc/passwd", "-w /etc", True),
    ("not_contains", ["hmac-sha1", "x"], ["hmac-md5", "hmac-sha1"], False),
    ("not_contains", ["x"], ["hmac-md5"], True),
    ("matches", "-w /etc/passwd -p wa -k identity", r"^-w /etc/passwd -p r?wx?a", True),
    ("matches", ["a", "-S adjtimex"], r"(?m)^-S adjtimex", True), ("matches", None, "x", False),
    ("empty", [], None, True), ("empty", None, None, True), ("empty", ["x"], None, False),
    ("not_empty", "x", None, True),
    ("subset_of", [22, 9110], [22, 9110, 5432], True), ("subset_of", [22, 23], [22], False),
    ("subset_of", None, [22], True),
    ("mode_max", "0640", "0640", True), ("mode_max", "0600", "0640", True),
    ("mode_max", "0644", "0640", False), ("mode_max", "2755", "0755", False),
    ("mode_max", None, "0640", False),
])
def test_operators(op: str, found: object, value: object, expected: bool) -> None:
    assert OPERATORS[op](found, value) is expected


def test_every_schema_operator_is_implemented() -> None:
    from security.schema import OPS

    assert set(OPS) == set(OPERATORS)


def test_resolve_uses_the_longest_key_for_dotted_and_path_keys() -> None:
    facts = {"sysctl": {"net.ipv4.ip_forward": 0},
             "files": {"/etc/login.defs": {"mode": "0644"}, "/etc/shadow": {"error": "EACCES"}},
             "packages": {"installed": {"python3.11": "3.11.2-6"}},
             "sshd": {"error": "sshd is not installed"}}
    assert resolve(facts, "sysctl.net.ipv4.ip_forward") == 0
    assert resolve(facts, "files./etc/login.defs.mode") == "0644"
    assert resolve(facts, "packages.installed.python3.11") == "3.11.2-6"
    assert resolve(facts, "packages.installed.absent") is None
    with pytest.raises(FactUnavailable, match="EACCES"):
        resolve(facts, "files./etc/shadow.mode")
    with pytest.raises(FactUnavailable, match="not installed"):
        resolve(facts, "sshd.permitrootlogin")
    with pytest.raises(FactUnavailable, match="not collected"):
        resolve(facts, "audit.enabled")


def test_three_valued_combinators() -> None:
    facts = {"a": {"x": 1}, "b": {"error": "unreadable"}}
    good, bad = Leaf(fact="a.x", op="eq", value=1), Leaf(fact="a.x", op="eq", value=2)
    broken = Leaf(fact="b.y", op="eq", value=1)
    assert eval_condition(AnyOf(any_of=[broken, good]), facts)[0] is True
    assert eval_condition(AnyOf(any_of=[broken, bad]), facts)[0] is None
    assert eval_condition(AllOf(all_of=[broken, bad]), facts)[0] is False
    assert eval_condition(AllOf(all_of=[broken, good]), facts)[0] is None
    ok, evidence = eval_condition(AllOf(all_of=[good, bad]), facts)
    assert ok is False and [e.ok for e in evidence] == [True, False]
    assert evidence[0].where == "a" and evidence[0].found == 1


@pytest.mark.parametrize(("statuses", "major", "expected"), [
    ([PASS, PASS], False, CONFORM), ([PASS, NA], False, CONFORM),
    ([PASS, FAIL], False, PARTIAL),
    # a failed major-risk trigger decides the unit, whatever else passed
    ([PASS, FAIL], True, NONCONFORM),
    ([FAIL, FAIL, NA], False, NONCONFORM), ([NA, NA], False, NOT_APPLICABLE),
    # evidence that could not be read is no evidence: never 符合, never 不符合 on its own
    ([PASS, ERROR], False, MANUAL), ([PASS, ERROR, NA], False, MANUAL),
    ([ERROR], False, NOT_TESTED), ([ERROR, ERROR, NA], False, NOT_TESTED),
    # a failure found stands, whatever could not be read beside it
    ([PASS, FAIL, ERROR], False, PARTIAL), ([FAIL, ERROR], False, NONCONFORM),
    ([], False, NOT_APPLICABLE),
])
def test_unit_verdict(statuses: list[str], major: bool, expected: str) -> None:
    assert verdict(statuses, major) == expected


def _unit(verdicts: list[UnitVerdict], unit: str) -> UnitVerdict:
    return next(v for v in verdicts if v.unit == unit)


def test_a_unit_with_a_failed_major_risk_trigger_is_nonconformant() -> None:
    catalog = load_catalog()
    unit = next(u for u in dict.fromkeys(c.unit for c in catalog)
                if len([c for c in catalog if c.unit == u]) > 1
                and any(c.spec.major_risk for c in catalog if c.unit == u))
    checks = [c for c in catalog if c.unit == unit]
    failing = next(c for c in checks if c.spec.major_risk)

    def scored(fail: CatalogCheck, major: bool) -> str:
        results = [CheckResult(c.id, FAIL if c is fail else PASS, "", c.clause, c.unit,
                               c.spec.severity, major and c is fail) for c in checks]
        return _unit(unit_verdicts(results, "host"), unit).verdict

    assert scored(failing, major=True) == NONCONFORM
    assert scored(failing, major=False) == PARTIAL


def test_unit_verdicts_group_checks_by_test_unit() -> None:
    checks = [c for c in load_catalog() if c.unit in ("L3-CES1-02", "L3-CES1-03")]
    facts = {"shell": {"tmout": 600, "tmout_readonly": True}}
    target = evaluate_target("h", "host", checks, facts)
    units = {u.unit: u for u in target.units}
    assert units["L3-CES1-02"].checks["shell_tmout"] == PASS
    # the rest cannot be read: error, not pass, and not a judgement either
    assert units["L3-CES1-02"].verdict == MANUAL
    assert "faillock_enabled" in units["L3-CES1-02"].incomplete
    # every host unit is listed, evidenced or not
    assert set(units) == {u.id for u, _ in default_units().for_scope("host")}


def test_result_document_and_fail_on() -> None:
    checks = load_catalog()
    facts = {"sshd": {"permitrootlogin": "yes"}, "packages": {"installed": {"openssh-server": "1"}}}
    target = evaluate_target("h", "host", checks, facts)
    doc = scan_document([target], 3, "2026-01-01T00:00:00Z", 0.1, len(checks))
    assert doc["schema"] == RESULT_SCHEMA
    host = doc["targets"][0]
    assert host["counts"][FAIL] >= 1
    root = next(c for c in host["checks"] if c["id"] == "sshd_permit_root_login")
    assert root["status"] == FAIL
    assert root["evidence"][0] == {"fact": "sshd.permitrootlogin", "found": "yes",
                                   "where": "sshd -T (effective, drop-ins applied)",
                                   "expected": "in ['no', 'prohibit-password', "
                                               "'without-password']", "ok": False}
    assert root["remediation"] == "opsctl harden --tags hardening-sshd"
    assert ("h", "sshd_permit_root_login") in fails_at([target], "high")
    assert all(c != "sshd_login_grace_time" for _, c in fails_at([target], "high"))


@pytest.mark.parametrize(("a", "b", "expected"), [
    ("1:9.2p1-2+deb12u3", "1:9.2p1-2+deb12u2", 1), ("3.0.13-1~deb12u1", "3.0.13-1", -1),
    ("2.36-9+deb12u9", "2.36-9+deb12u10", -1), ("1.0~rc1", "1.0", -1), ("1.0", "1.0", 0),
    ("1:1.0", "2.0", 1), ("1.0a", "1.0", 1), ("1.0-1", "1.0", 1),
])
def test_debian_version_order(a: str, b: str, expected: int) -> None:
    assert compare_versions(a, b) == expected


def test_a_check_not_testable_here_leaves_the_unit_to_the_assessor_not_to_not_applicable():
    """Audit in a container: the requirement exists, this host cannot show it. The unit is
    未测 (nothing else evaluated) or 人工核查 (something passed), never 不适用."""
    catalog = load_catalog()
    audit = [c for c in catalog if c.id == "auditd_running"]
    facts_unavailable = {"audit": {"kernel_available": False,
                                   "unavailable_reason": "EPERM (nspawn)"}}
    [result] = evaluate_target("h", "host", audit, facts_unavailable).results
    assert result.status == NA and result.kind == "not_tested" and result.not_evaluated
    assert "EPERM (nspawn)" in result.reason
    unit = _unit(unit_verdicts([result], "host"), audit[0].unit)
    assert unit.verdict == NOT_TESTED and "auditd_running" in unit.incomplete
    # beside a passing check of the same unit: manual, not conformant
    other = next(c for c in catalog if c.unit == audit[0].unit and c.id != "auditd_running")
    passed = CheckResult(other.id, PASS, "", other.clause, other.unit, other.spec.severity,
                         other.spec.major_risk)
    assert _unit(unit_verdicts([result, passed], "host"), audit[0].unit).verdict == MANUAL
    # a requirement that does not exist here (no sshd) stays 不适用
    absent = CheckResult("x", NA, "openssh-server is not installed", "c", "u", "low", False,
                         kind="not_applicable")
    assert not absent.not_evaluated


# ---------------------------------------------------------------- verdicts follow the steps

def _spec(*steps: dict) -> Units:
    unit = {"id": "L3-CES1-05", "clause": "8.1.4.2 a", "title_zh": "t", "title_en": "t",
            "objects": ["host"], "steps": list(steps)}
    return Units(UnitSpec(standard="s", test_standard="t", level=3, units=[unit]), "units.yml")


def _result(cid: str, status: str, kind: str = "", major: bool = False) -> CheckResult:
    return CheckResult(cid, status, "", "8.1.4.2 a", "L3-CES1-05", "high", major, kind=kind)


A = {"examine": "a", "checks": ["a"]}
B = {"examine": "b", "checks": ["b"]}
HAND = {"examine": "m", "manual": "记录"}
A_AND_HAND = {"examine": "am", "checks": ["a"], "manual": "记录"}


@pytest.mark.parametrize(("steps", "results", "expected"), [
    # every step covered by passing evidence: the only way to 符合
    ([A, B], [("a", PASS), ("b", PASS)], CONFORM),
    # one manual step: never 符合, whatever passed
    ([A, HAND], [("a", PASS)], MANUAL),
    ([A_AND_HAND], [("a", PASS)], MANUAL),
    # a step whose checks were not evaluated leaves the unit to the assessor
    ([A, B], [("a", PASS), ("b", ERROR)], MANUAL),
    ([A, B], [("a", PASS)], MANUAL),  # b not in this scan (another level)
    ([A, B], [("a", PASS), ("b", NA, "not_tested")], MANUAL),
    # all errored: 未测
    ([A, B], [("a", ERROR), ("b", ERROR)], NOT_TESTED),
    # ...but with a manual step it is the assessor's
    ([A, HAND], [("a", ERROR)], MANUAL),
    # failures keep their rules, manual steps or not
    ([A, B, HAND], [("a", PASS), ("b", FAIL)], PARTIAL),
    ([A, HAND], [("a", FAIL)], NONCONFORM),
    # the requirement does not exist here: 不适用, and a step whose checks do not apply is no
    # manual work either
    ([A, B], [("a", NA), ("b", NA)], NOT_APPLICABLE),
    ([A_AND_HAND], [("a", NA)], NOT_APPLICABLE),
    ([A, B], [("a", NA), ("b", PASS)], CONFORM),
    # no automated check for this object at all: listed, for the assessor
    ([HAND], [], MANUAL),
])
def test_unit_verdicts_follow_the_steps(steps: list[dict], results: list[tuple],
                                        expected: str) -> None:
    [unit] = unit_verdicts([_result(*r) for r in results], "host", _spec(*steps))
    assert unit.verdict == expected


def test_a_major_risk_failure_in_a_step_decides_the_unit() -> None:
    results = [_result("a", PASS), _result("b", FAIL, major=True)]
    [unit] = unit_verdicts(results, "host", _spec(A, B))
    assert unit.verdict == NONCONFORM


def test_steps_carry_their_status_checks_and_manual_evidence() -> None:
    [unit] = unit_verdicts([_result("a", PASS), _result("b", ERROR)], "host",
                           _spec(A, B, HAND))
    assert [s.status for s in unit.steps] == [PASS, NOT_EVALUATED, STEP_MANUAL]
    assert unit.steps[1].checks == {"b": ERROR}
    assert [s.manual for s in unit.manual_steps] == ["记录"]
    data = unit.as_dict()
    assert data["steps"][2] == {"examine": "m", "examine_en": None, "object": "host",
                                "status": "manual", "checks": {}, "manual": "记录"}
    assert data["incomplete"] == ["b"]


def test_every_unit_of_the_targets_object_is_listed() -> None:
    """Units with only manual steps appear too, as 人工核查 with their manual steps."""
    spec = default_units()
    host = evaluate_target("h", "host", load_catalog(), {})
    assert [u.unit for u in host.units] == [u.id for u, _ in spec.for_scope("host")]
    trusted = _unit(host.units, "L3-CES1-24")  # 可信验证: no automated check
    assert trusted.verdict == MANUAL and trusted.manual_steps
    site = unreachable_target("site", "network", load_catalog(), "not scanned")
    ids = {u.unit for u in site.units}
    assert {"L3-CNS1-01", "L3-ABS1-20", "L3-SMC1-12", "L3-PES1-G01", "L3-MMS1-G14"} <= ids
    assert _unit(site.units, "L3-PES1-G02").verdict == MANUAL
    assert _unit(site.units, "L3-ABS1-05").verdict == NOT_TESTED
