"""The unit specification (security/catalog/units.yml): every level-3 technical unit, every step
evidenced, in agreement with mapping.yml; a broken spec is one line per problem."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from security.schema import CATALOG_DIR, CatalogError, load_catalog, load_clauses
from security.units import TECHNICAL_IDS, load_units

UNITS = load_units()
CHECKS = load_catalog()


def _ids(family: str) -> set[str]:
    return {u.id for u in UNITS.units if u.id.startswith(f"L3-{family}-")}


def test_every_level3_technical_unit_is_present() -> None:
    assert _ids("CNS1") == {f"L3-CNS1-{i:02d}" for i in range(1, 9)}
    assert _ids("ABS1") == {f"L3-ABS1-{i:02d}" for i in range(1, 21)}
    assert _ids("CES1") == {f"L3-CES1-{i:02d}" for i in range(1, 36)} - {"L3-CES1-16"}
    assert _ids("SMC1") == {f"L3-SMC1-{i:02d}" for i in range(1, 13)}
    assert len(TECHNICAL_IDS) == 8 + 20 + 34 + 12
    assert len({u.id for u in UNITS.units}) == len(UNITS.units)


def test_physical_and_management_requirements_are_manual_checklists() -> None:
    for family in ("PES1", "PSS1", "ORS1", "HRS1", "CMS1", "MMS1"):
        units = [u for u in UNITS.units if u.id.startswith(f"L3-{family}-")]
        assert units, family
        assert all(s.manual and not s.checks for u in units for s in u.steps), family


def test_every_step_has_checks_or_manual_evidence() -> None:
    for unit in UNITS.units:
        for step in unit.steps:
            assert step.checks or step.manual, (unit.id, step.examine)


def test_every_check_is_named_by_a_step_and_every_named_check_exists() -> None:
    named = {cid for u in UNITS.units for s in u.steps for cid in s.checks}
    assert named == {c.id for c in CHECKS}


def test_steps_agree_with_the_mapping() -> None:
    """Each check is a step of the unit mapping.yml gives its clause, on its own object."""
    units = {u.id: u for u in UNITS.units}
    for check in CHECKS:
        unit = units[check.unit]
        assert unit.clause == check.clause, check.id
        steps = [s for s in unit.steps if check.id in s.checks]
        assert steps, (check.id, unit.id)
        scopes = {"host": "host", "network": "network", "site": "network"}
        assert all(scopes[unit.step_object(s)] == check.spec.scope for s in steps), check.id
    for clause, spec in load_clauses().items():
        assert units[spec.unit].clause == clause
        assert (units[spec.unit].title_zh, units[spec.unit].title_en) == \
            (spec.title_zh, spec.title_en)


@pytest.fixture
def catalog_copy(tmp_path: Path) -> Path:
    target = tmp_path / "catalog"
    shutil.copytree(CATALOG_DIR, target)
    return target


def _problems(directory: Path) -> list[str]:
    with pytest.raises(CatalogError) as info:
        load_units(directory)
    lines = [str(p) for p in info.value.problems]
    assert all("\n" not in line for line in lines)
    return lines


def _rewrite(directory: Path, change) -> Path:
    path = directory / "units.yml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data["units"])
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_a_step_without_evidence_is_one_line(catalog_copy: Path) -> None:
    def strip(units: list[dict]) -> None:
        units[0]["steps"][0].pop("manual")

    path = _rewrite(catalog_copy, strip)
    [line] = _problems(catalog_copy)
    assert line.startswith(f"{path}: units[0].steps[0]: a step needs checks")


def test_unknown_key_bad_object_and_unknown_check(catalog_copy: Path) -> None:
    def break_(units: list[dict]) -> None:
        units[1]["owner"] = "ops"
        units[2]["steps"][0]["checks"] = ["no_such_check"]

    path = _rewrite(catalog_copy, break_)
    assert _problems(catalog_copy) == [f"{path}: units[1].owner: unknown key"]
    _rewrite(catalog_copy, lambda units: units[1].pop("owner"))
    problems = _problems(catalog_copy)
    assert f"{path}: units[2].steps[0].checks: 'no_such_check': no check in the catalog " \
           "has this id" in problems
    # the checks the step named are now named by no step
    assert any("net_zones_distinct_cidrs" in p and "named by no step" in p for p in problems)


def test_a_check_moved_to_another_unit_disagrees_with_the_mapping(catalog_copy: Path) -> None:
    def move(units: list[dict]) -> None:
        ces02 = next(u for u in units if u["id"] == "L3-CES1-02")
        ces03 = next(u for u in units if u["id"] == "L3-CES1-03")
        ces02["steps"][1]["checks"].remove("shell_tmout")
        ces03["steps"][0]["checks"].append("shell_tmout")

    path = _rewrite(catalog_copy, move)
    assert _problems(catalog_copy) == [
        f"{path}: units: check shell_tmout: {catalog_copy}/mapping.yml maps it to 8.1.4.1 b "
        "(L3-CES1-02) but no step of L3-CES1-02 names it"]


def test_a_missing_unit_and_a_wrong_title_are_named(catalog_copy: Path) -> None:
    def drop(units: list[dict]) -> None:
        units[:] = [u for u in units if u["id"] != "L3-ABS1-20"]
        next(u for u in units if u["id"] == "L3-CES1-04")["title_en"] = "two factors"

    path = _rewrite(catalog_copy, drop)
    problems = _problems(catalog_copy)
    assert f"{path}: units: level-3 technical units missing: L3-ABS1-20" in problems
    assert any(p.startswith(f"{path}: units[") and ".title_en: 'two factors' but mapping.yml"
               in p for p in problems)


def test_invalid_yaml_is_one_line(catalog_copy: Path) -> None:
    (catalog_copy / "units.yml").write_text("units: [unclosed\n", encoding="utf-8")
    [line] = _problems(catalog_copy)
    assert line.startswith(f"{catalog_copy}/units.yml: not valid YAML")
