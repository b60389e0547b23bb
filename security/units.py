"""The GB/T 28448-2019 unit specification (catalog/units.yml): units → steps → checks or manual
evidence, validated on load against the catalog and mapping.yml.

Every problem names the file, the key and the reason, one line each (schema.Problem).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from security.schema import (
    CATALOG_DIR,
    CatalogCheck,
    CatalogError,
    Problem,
    Strict,
    _display,
    _Loader,
    _pydantic_problems,
    load_catalog,
    load_clauses,
)

UNITS_FILE = "units.yml"
Object = Literal["host", "network", "site"]
# Which target a step is judged on: a host's own scan, or the site's network target.
TARGET_SCOPE: dict[str, str] = {"host": "host", "network": "network", "site": "network"}
TECHNICAL = ("CNS1", "ABS1", "CES1", "SMC1")
GROUPS = ("PES1", "PSS1", "ORS1", "HRS1", "CMS1", "MMS1")
UNIT_ID = rf"^L3-(({'|'.join(TECHNICAL)})-\d{{2}}|({'|'.join(GROUPS)})-G\d{{2}})$"
UNIT_CLAUSE = r"^8\.1\.([1-9]|10)\.\d{1,2}( [a-g])?$"
# The level-3 technical units GB/T 28448-2019 numbers (the computing environment has no 16).
TECHNICAL_IDS: frozenset[str] = frozenset(
    [f"L3-CNS1-{i:02d}" for i in range(1, 9)] + [f"L3-ABS1-{i:02d}" for i in range(1, 21)]
    + [f"L3-CES1-{i:02d}" for i in range(1, 36) if i != 16]
    + [f"L3-SMC1-{i:02d}" for i in range(1, 13)])


class Step(Strict):
    examine: str = Field(min_length=1)  # what the assessor examines (zh)
    examine_en: str | None = None
    object: Object | None = None  # defaults to the unit's only object
    checks: list[str] = Field(default_factory=list)
    manual: str | None = Field(default=None, min_length=1)  # evidence collected by hand

    @model_validator(mode="after")
    def _evidenced(self) -> Step:
        if not self.checks and self.manual is None:
            raise ValueError("a step needs checks (automated evidence) or manual (what the "
                             "assessor collects)")
        return self


class Unit(Strict):
    id: str = Field(pattern=UNIT_ID)
    clause: str = Field(pattern=UNIT_CLAUSE)
    title_zh: str = Field(min_length=1)
    title_en: str = Field(min_length=1)
    objects: list[Object] = Field(min_length=1)
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _step_objects(self) -> Unit:
        for i, step in enumerate(self.steps):
            if step.object is None and len(self.objects) > 1:
                raise ValueError(f"steps[{i}] needs object: the unit concerns "
                                 f"{', '.join(self.objects)}")
            if step.object is not None and step.object not in self.objects:
                raise ValueError(f"steps[{i}].object {step.object!r} is not among the unit's "
                                 f"objects {self.objects}")
        return self

    def step_object(self, step: Step) -> str:
        return step.object or self.objects[0]

    @property
    def technical(self) -> bool:
        return self.id.split("-")[1] in TECHNICAL


class UnitSpec(Strict):
    standard: str
    test_standard: str
    level: Literal[3]
    units: list[Unit] = Field(min_length=1)


@dataclass(frozen=True)
class Units:
    """The validated specification with the lookups the evaluator and docs need."""

    spec: UnitSpec
    file: str

    @property
    def units(self) -> list[Unit]:
        return self.spec.units

    def for_scope(self, scope: str) -> list[tuple[Unit, list[Step]]]:
        """Every unit with a step judged on a target of this scope, with those steps."""
        out = []
        for unit in self.units:
            steps = [s for s in unit.steps if TARGET_SCOPE[unit.step_object(s)] == scope]
            if steps:
                out.append((unit, steps))
        return out


def _parse(path: Path) -> tuple[UnitSpec | None, list[Problem]]:
    file = _display(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except FileNotFoundError:
        return None, [Problem(file, "", "missing: the unit specification is required")]
    except yaml.YAMLError as exc:
        return None, [Problem(file, "", f"not valid YAML: {exc}".splitlines()[0])]
    if not isinstance(raw, dict):
        return None, [Problem(file, "", "must be a mapping with standard, level and units")]
    try:
        return UnitSpec.model_validate(raw), []
    except ValidationError as exc:
        return None, _pydantic_problems(file, exc)


def _agreement(file: str, spec: UnitSpec, checks: list[CatalogCheck],
               mapping_file: str, clauses: dict) -> list[Problem]:
    """What keeps this file and mapping.yml saying the same thing (see units.yml's header)."""
    problems: list[Problem] = []
    by_id = {c.id: c for c in checks}
    seen: dict[str, int] = {}
    named: set[str] = set()
    for i, unit in enumerate(spec.units):
        where = f"units[{i}]"
        if unit.id in seen:
            problems.append(Problem(file, f"{where}.id",
                                    f"{unit.id} repeats units[{seen[unit.id]}]"))
        seen.setdefault(unit.id, i)
        problems += _clause_agrees(file, where, unit, clauses)
        for j, step in enumerate(unit.steps):
            for cid in step.checks:
                named.add(cid)
                check = by_id.get(cid)
                if check is None:
                    problems.append(Problem(file, f"{where}.steps[{j}].checks",
                                            f"{cid!r}: no check in the catalog has this id"))
                elif TARGET_SCOPE[unit.step_object(step)] != check.spec.scope:
                    problems.append(Problem(file, f"{where}.steps[{j}].checks",
                                            f"{cid!r} is a {check.spec.scope} check, the step's "
                                            f"object is {unit.step_object(step)}"))
    units = {u.id: u for u in spec.units}
    for check in checks:
        if check.id not in named:
            problems.append(Problem(file, "units", f"check {check.id} ({check.file}) is named "
                                    "by no step"))
            continue
        unit = units.get(check.unit)
        if unit is None or check.id not in {c for s in unit.steps for c in s.checks}:
            problems.append(Problem(file, "units", f"check {check.id}: {mapping_file} maps it "
                                    f"to {check.clause} ({check.unit}) but no step of "
                                    f"{check.unit} names it"))
    missing = sorted(TECHNICAL_IDS - set(units), key=_unit_key)
    if missing:
        problems.append(Problem(file, "units", "level-3 technical units missing: "
                                + ", ".join(missing)))
    return problems


def _clause_agrees(file: str, where: str, unit: Unit, clauses: dict) -> list[Problem]:
    spec = clauses.get(unit.clause)
    if spec is None:
        return []
    problems = []
    for key in ("unit", "title_zh", "title_en"):
        ours = unit.id if key == "unit" else getattr(unit, key)
        if getattr(spec, key) != ours:
            problems.append(Problem(file, f"{where}.{'id' if key == 'unit' else key}",
                                    f"{ours!r} but mapping.yml gives {unit.clause} "
                                    f"{getattr(spec, key)!r}"))
    return problems


def load_units(directory: Path = CATALOG_DIR) -> Units:
    """The unit specification, validated against the catalog; raises CatalogError."""
    path = directory / UNITS_FILE
    spec, problems = _parse(path)
    if spec is None:
        raise CatalogError(problems)
    problems = _agreement(_display(path), spec, load_catalog(directory),
                          _display(directory / "mapping.yml"), load_clauses(directory))
    if problems:
        raise CatalogError(problems)
    return Units(spec, _display(path))


@cache
def default_units() -> Units:
    """The shipped specification, loaded and checked once per process."""
    return load_units()


def _unit_key(unit: str) -> tuple[str, int]:
    prefix, _, num = unit.rpartition("-")
    digits = re.sub(r"\D", "", num)
    return prefix, int(digits) if digits else 0
