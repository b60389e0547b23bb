"""The catalog validates; a broken check or mapping is reported by file, key and reason."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from security.schema import CATALOG_DIR, CatalogError, load_catalog, load_clauses

CHECKS = load_catalog()


def test_catalog_size_and_scopes() -> None:
    host = [c for c in CHECKS if c.spec.scope == "host"]
    network = [c for c in CHECKS if c.spec.scope == "network"]
    assert len(host) >= 60
    assert len(network) >= 12


def test_every_check_has_a_clause_a_unit_and_a_remediation_or_reason() -> None:
    for c in CHECKS:
        assert re.fullmatch(r"8\.1\.[2-5]\.\d+( [a-g])?", c.clause), c.id
        assert re.fullmatch(r"L3-(CES1|ABS1|CNS1|SMC1)-\d\d", c.unit), c.id
        rem = c.spec.remediation
        assert (rem.tag or "").startswith("hardening-") or rem.apply or rem.opsctl \
            or (rem.manual and len(rem.manual) > 10)
        assert c.spec.manual_verification and c.spec.rationale


def test_host_checks_cover_every_computing_environment_clause_group() -> None:
    groups = {".".join(c.clause.split()[0].split(".")[:4]) for c in CHECKS
              if c.spec.scope == "host"}
    # 8.1.4.6 可信验证 wants a root of trust, dynamic verification and an alarm to the
    # management centre: no check here evidences that (an AIDE database is integrity
    # detection, 8.1.4.4 f), so the unit is the assessor's, not a pass on AIDE.
    assert "8.1.4.6" not in groups
    assert groups >= {f"8.1.4.{i}" for i in range(1, 12)} - {"8.1.4.6"}
    # Besides: the central log collector's own checks (8.1.5.4 d), verified on that host.
    assert groups - {f"8.1.4.{i}" for i in range(1, 12)} <= {"8.1.5.4"}


def test_units_follow_the_clause_order() -> None:
    """L3-CES1 units are numbered in the order of 8.1.4's items."""
    clauses = load_clauses()
    ces = sorted(((k, v.unit) for k, v in clauses.items() if k.startswith("8.1.4")),
                 key=lambda kv: int(kv[1][-2:]))
    keys = [tuple(int(x) for x in k.split()[0].split(".")) + (k[-1] if " " in k else "",)
            for k, _ in ces]
    assert keys == sorted(keys)
    for clause, spec in clauses.items():
        if spec.level2:
            assert spec.level2.startswith("7." + clause[2:5]), clause


# GB/T 28448-2019's level-3 units: (family, first clause item, units) in clause order. The
# computing environment skips L3-CES1-16 (34 units numbered 01..35).
UNIT_LAYOUT = {
    "CNS1": ["8.1.2.1 a", "8.1.2.1 b", "8.1.2.1 c", "8.1.2.1 d", "8.1.2.1 e", "8.1.2.2 a",
             "8.1.2.2 b", "8.1.2.3"],
    "ABS1": [*(f"8.1.3.1 {x}" for x in "abcd"), *(f"8.1.3.2 {x}" for x in "abcde"),
             *(f"8.1.3.3 {x}" for x in "abcd"), "8.1.3.4 a", "8.1.3.4 b",
             *(f"8.1.3.5 {x}" for x in "abcd"), "8.1.3.6"],
    "CES1": [*(f"8.1.4.1 {x}" for x in "abcd"), *(f"8.1.4.2 {x}" for x in "abcdefg"),
             *(f"8.1.4.3 {x}" for x in "abcd"), None, *(f"8.1.4.4 {x}" for x in "abcdef"),
             "8.1.4.5", "8.1.4.6", "8.1.4.7 a", "8.1.4.7 b", "8.1.4.8 a", "8.1.4.8 b",
             *(f"8.1.4.9 {x}" for x in "abc"), "8.1.4.10 a", "8.1.4.10 b", "8.1.4.11 a",
             "8.1.4.11 b"],
    "SMC1": [*(f"8.1.5.{n} {x}" for n in (1, 2, 3) for x in "ab"),
             *(f"8.1.5.4 {x}" for x in "abcdef")],
}


def test_units_are_the_standards() -> None:
    expected = {clause: f"L3-{family}-{i:02d}" for family, clauses in UNIT_LAYOUT.items()
                for i, clause in enumerate(clauses, start=1) if clause}
    assert len(UNIT_LAYOUT["CES1"]) == 35 and UNIT_LAYOUT["CES1"].count(None) == 1
    for clause, spec in load_clauses().items():
        assert spec.unit == expected[clause], clause


def test_levels_follow_the_mapping() -> None:
    level2 = load_catalog(level=2)
    assert 0 < len(level2) < len(CHECKS)
    assert all(c.clause_level2 for c in level2)


@pytest.fixture
def catalog_copy(tmp_path: Path) -> Path:
    target = tmp_path / "catalog"
    shutil.copytree(CATALOG_DIR, target)
    return target


def _edit(path: Path, **changes: object) -> None:
    data = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data, allow_unicode=True))


def _problems(directory: Path) -> list[str]:
    with pytest.raises(CatalogError) as info:
        load_catalog(directory)
    return [str(p) for p in info.value.problems]


def test_unknown_operator_names_file_key_and_reason(catalog_copy: Path) -> None:
    path = catalog_copy / "host" / "sshd_permit_root_login.yml"
    _edit(path, **{"pass": {"fact": "sshd.permitrootlogin", "op": "equals", "value": "no"}})
    problems = _problems(catalog_copy)
    assert any(p.startswith(str(path)) and "pass.op" in p and "'eq'" in p for p in problems), \
        problems


def test_unknown_fact_names_file_key_and_reason(catalog_copy: Path) -> None:
    path = catalog_copy / "host" / "shell_tmout.yml"
    _edit(path, **{"pass": {"fact": "shell.timeout", "op": "le", "value": 900}})
    assert _problems(catalog_copy) == [
        f"{path}: pass.fact: unknown fact 'shell.timeout': shell has no key 'timeout'"]


def test_unknown_fact_group_and_unlisted_group(catalog_copy: Path) -> None:
    path = catalog_copy / "host" / "shell_tmout.yml"
    _edit(path, **{"pass": {"all_of": [{"fact": "kernel.tmout", "op": "le", "value": 9},
                                       {"fact": "sysctl.kernel.kptr_restrict", "op": "ge",
                                        "value": 1}]}})
    problems = _problems(catalog_copy)
    assert any("unknown fact group 'kernel'" in p for p in problems)
    assert any("which collect does not list" in p for p in problems)


def test_a_sysctl_or_file_the_collector_does_not_read_is_unknown(catalog_copy: Path) -> None:
    path = catalog_copy / "host" / "file_passwd_permissions.yml"
    _edit(path, **{"pass": {"fact": "files./etc/motd.mode", "op": "mode_max", "value": "0644"}})
    assert "files has no key" in _problems(catalog_copy)[0]


def test_missing_remediation_or_both_kinds(catalog_copy: Path) -> None:
    a = catalog_copy / "host" / "pam_no_nullok.yml"
    b = catalog_copy / "host" / "faillock_enabled.yml"
    _edit(a, remediation=None)
    _edit(b, remediation={"tag": "hardening-pam", "manual": "also by hand"})
    problems = _problems(catalog_copy)
    assert f"{a}: remediation: required key is missing" in problems
    assert any(p.startswith(f"{b}: remediation") and "exactly one" in p for p in problems)


def test_missing_clause_mapping_is_an_error(catalog_copy: Path) -> None:
    mapping = catalog_copy / "mapping.yml"
    data = yaml.safe_load(mapping.read_text())
    del data["checks"]["shell_tmout"]
    data["checks"]["sysctl_rp_filter"]["clause"] = "8.1.4.4 d"
    data["checks"]["no_such_check"] = {"clause": "8.1.4.1 a"}
    mapping.write_text(yaml.safe_dump(data, allow_unicode=True))
    problems = _problems(catalog_copy)
    assert f"{mapping}: checks.shell_tmout: missing: check " \
           f"{catalog_copy}/host/shell_tmout.yml has no clause" in problems
    assert f"{mapping}: checks.sysctl_rp_filter.clause: '8.1.4.4 d' is not listed " \
           "under clauses" in problems
    assert f"{mapping}: checks.no_such_check: no check file has this id" in problems


def test_id_must_match_the_file_and_yaml_errors_are_reported(catalog_copy: Path) -> None:
    _edit(catalog_copy / "host" / "su_restricted.yml", id="su_limited")
    (catalog_copy / "host" / "broken.yml").write_text("id: [unclosed\n")
    problems = _problems(catalog_copy)
    assert any("su_restricted.yml: id: 'su_limited' must equal the file name" in p
               for p in problems)
    assert any(p.startswith(f"{catalog_copy}/host/broken.yml: not valid YAML") for p in problems)


def test_unknown_keys_and_bad_values(catalog_copy: Path) -> None:
    path = catalog_copy / "host" / "sysctl_tcp_syncookies.yml"
    _edit(path, severity="critical", owner="ops", levels=[1])
    problems = _problems(catalog_copy)
    assert any(p.startswith(f"{path}: severity") for p in problems)
    assert f"{path}: owner: unknown key" in problems
    assert any(p.startswith(f"{path}: levels[0]") for p in problems)
