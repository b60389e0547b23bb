"""The catalog's schema: one YAML file per check, and the clause mapping; validated on load.

Every problem names the file, the key and the reason. The catalog is data; the evaluator
interprets it with a small fixed set of operators.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)

from security import facts
from security.kept import digest, kept

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
CATALOG_DIR = Path(__file__).resolve().parent / "catalog"

Op = Literal["eq", "ne", "in", "not_in", "ge", "le", "contains", "not_contains", "matches",
             "empty", "not_empty", "subset_of", "mode_max"]
OPS: tuple[str, ...] = Op.__args__  # type: ignore[attr-defined]
UNARY = ("empty", "not_empty")
ID = r"^[a-z][a-z0-9_]{2,60}$"
CLAUSE = r"^8\.1\.[2-5]\.\d{1,2}( [a-g])?$"
CLAUSE_L2 = r"^7\.1\.[2-5]\.\d{1,2}( [a-g])?$"
UNIT = r"^L3-(CES1|ABS1|CNS1|SMC1)-\d{2}$"


@dataclass(frozen=True)
class Problem:
    file: str
    key: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.key}" if self.key else self.file
        return f"{where}: {self.reason}"


class CatalogError(Exception):
    """The catalog (a check file or the mapping) is invalid; every problem on its own line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Leaf(Strict):
    fact: str
    op: Op
    value: Any = None

    @model_validator(mode="after")
    def _operand(self) -> Leaf:
        if self.op in UNARY and self.value is not None:
            raise ValueError(f"operator {self.op} takes no value")
        if self.op not in UNARY and self.value is None:
            raise ValueError(f"operator {self.op} needs a value")
        if self.op == "matches" and isinstance(self.value, str):
            re.compile(self.value)
        if self.op == "mode_max" and not re.fullmatch(r"0?[0-7]{3,4}", str(self.value)):
            raise ValueError(f"mode_max needs an octal mode like '0640' (got {self.value!r})")
        if self.op in ("in", "not_in", "subset_of") and not (
            isinstance(self.value, list) or _fact_ref(self.value)
        ):
            raise ValueError(f"operator {self.op} needs a list (or {{fact: NAME}})")
        return self


class AllOf(Strict):
    all_of: list[Condition] = Field(min_length=1)


class AnyOf(Strict):
    any_of: list[Condition] = Field(min_length=1)


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "AllOf" if "all_of" in value else "AnyOf" if "any_of" in value else "Leaf"
    return type(value).__name__


Condition = Annotated[
    Annotated[Leaf, Tag("Leaf")] | Annotated[AllOf, Tag("AllOf")] | Annotated[AnyOf, Tag("AnyOf")],
    Discriminator(_kind),
]
AllOf.model_rebuild()
AnyOf.model_rebuild()


class NotApplicableWhen(Leaf):
    reason: str = Field(min_length=1)
    reason_fact: str | None = None  # a fact whose value is appended to the reason
    # not_applicable: the requirement does not exist on this object (no sshd, no sudo);
    # not_tested: it exists but cannot be tested here (a container's kernel, --local without
    # the site): the unit is then left to the assessor, never 不适用;
    # evidence_elsewhere: another host holds the evidence (a database's backups are in the
    # backup host's repository): `elsewhere` names the fact listing those hosts, and the
    # result follows theirs in a scan of the site (security.evaluate.follow_evidence).
    kind: Literal["not_applicable", "not_tested", "evidence_elsewhere"] = "not_applicable"
    elsewhere: str | None = None

    @model_validator(mode="after")
    def _elsewhere_names_hosts(self) -> NotApplicableWhen:
        if (self.kind == "evidence_elsewhere") != (self.elsewhere is not None):
            raise ValueError("`elsewhere` (the fact naming the hosts) goes with "
                             "kind: evidence_elsewhere, and only with it")
        return self


class Note(Strict):
    """A fact shown with the result whenever it is set, which never decides it: why a unit is
    off by design, for instance. It joins the evidence (with `note`: `says: value`) and the
    reason; the status stays what the conditions made it."""

    fact: str
    says: str = Field(min_length=1)


class Remediation(Strict):
    """What fixes a failure: a concern of the hardening role (`opsctl harden --tags`), a tag
    of another role that owns the setting (`opsctl apply --tags`: the firewall, PostgreSQL,
    pgBackRest, nginx), an opsctl command of its own (`opsctl`: e.g. `patch`, the rolling
    update), or nothing opsctl does (`manual`, with the reason)."""

    tag: str | None = Field(default=None, pattern=r"^hardening-[a-z0-9-]+$")
    apply: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_-]+$")
    opsctl: str | None = Field(default=None, pattern=r"^[a-z][a-z -]*[a-z]$")
    manual: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one(self) -> Remediation:
        given = (self.tag, self.apply, self.opsctl, self.manual)
        if sum(v is not None for v in given) != 1:
            raise ValueError("give exactly one of tag (hardening-<x>), apply (a role's tag), "
                             "opsctl (a command) or manual (the reason)")
        return self

    @property
    def command(self) -> str:
        if self.tag:
            return f"opsctl harden --tags {self.tag}"
        if self.apply:
            return f"opsctl apply --tags {self.apply}"
        if self.opsctl:
            return f"opsctl {self.opsctl}"
        return f"manual: {self.manual}"


class Check(Strict):
    id: str = Field(pattern=ID)
    title_zh: str = Field(min_length=1)
    title_en: str = Field(min_length=1)
    scope: Literal["host", "network"]
    levels: list[Literal[2, 3]] = Field(min_length=1)
    severity: Literal["low", "medium", "high"]
    major_risk: bool = False
    collect: list[str] = Field(min_length=1)
    pass_: Condition = Field(alias="pass")
    not_applicable_when: list[NotApplicableWhen] = Field(default_factory=list)
    notes: list[Note] = Field(default_factory=list)
    remediation: Remediation
    manual_verification: str = Field(min_length=1)
    rationale: str = Field(min_length=1)


class ClauseSpec(Strict):
    unit: str = Field(pattern=UNIT)
    level2: str | None = Field(default=None, pattern=CLAUSE_L2)
    title_zh: str = Field(min_length=1)
    title_en: str = Field(min_length=1)


class MappingEntry(Strict):
    clause: str = Field(pattern=CLAUSE)


class Mapping(Strict):
    standard: str
    test_standard: str
    clauses: dict[str, ClauseSpec]
    checks: dict[str, MappingEntry]


@dataclass(frozen=True)
class CatalogCheck:
    """A check with its clause resolved: what the evaluator and the reports use."""

    spec: Check
    clause: str
    unit: str
    clause_level2: str | None
    clause_title_zh: str
    clause_title_en: str
    file: str

    @property
    def id(self) -> str:
        return self.spec.id


def _fact_ref(value: object) -> bool:
    return isinstance(value, dict) and set(value) == {"fact"} and isinstance(value["fact"], str)


def leaves(cond: Condition) -> list[Leaf]:
    if isinstance(cond, Leaf):
        return [cond]
    items = cond.all_of if isinstance(cond, AllOf) else cond.any_of
    return [leaf for c in items for leaf in leaves(c)]


def _loc(err: dict) -> str:
    parts = []
    for p in err["loc"]:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        elif p in ("Leaf", "AllOf", "AnyOf", "function-after[_operand(), Leaf]",
                   "function-after[_one(), Remediation]"):
            continue
        else:
            parts.append(f".{'pass' if p == 'pass_' else p}")
    return "".join(parts).lstrip(".")


def _pydantic_problems(file: str, exc: ValidationError, prefix: str = "") -> list[Problem]:
    out: dict[tuple[str, str], None] = {}
    for err in exc.errors():
        reason = err["msg"].removeprefix("Value error, ")
        if err["type"] == "union_tag_invalid":
            reason = "must be a condition: {fact, op, value}, {all_of: [...]} or {any_of: [...]}"
        elif err["type"] == "extra_forbidden":
            reason = "unknown key"
        elif err["type"] == "missing":
            reason = "required key is missing"
        elif "input" in err and not isinstance(err["input"], dict | list):
            reason += f" (got {err['input']!r})"
        key = _loc(err)
        out[(f"{prefix}{key}" if key else prefix.rstrip("."), reason)] = None
    # A union reports each branch; keep the problems, not the noise of which branch failed.
    return [Problem(file, k, r) for k, r in out]


def _semantic_problems(file: str, check: Check, stem: str, scope_dir: str) -> list[Problem]:
    problems = []
    if check.id != stem:
        problems.append(Problem(file, "id", f"{check.id!r} must equal the file name {stem!r}"))
    if check.scope != scope_dir:
        problems.append(Problem(file, "scope", f"{check.scope!r} but the file is in "
                                f"{scope_dir}/"))
    for name in check.collect:
        if name not in facts.GROUPS:
            problems.append(Problem(file, "collect", f"unknown fact group {name!r}"))
        elif facts.GROUPS[name].scope != check.scope and name != "context":
            problems.append(Problem(file, "collect",
                                    f"fact group {name!r} is {facts.GROUPS[name].scope}-scoped, "
                                    f"the check is {check.scope}-scoped"))
    conds: list[tuple[str, Leaf]] = [("pass", leaf) for leaf in leaves(check.pass_)]
    conds += [(f"not_applicable_when[{i}]", c) for i, c in enumerate(check.not_applicable_when)]
    named: list[tuple[str, list[str]]] = []
    for where, leaf in conds:
        paths = [leaf.fact]
        if _fact_ref(leaf.value):
            paths.append(leaf.value["fact"])
        if isinstance(leaf, NotApplicableWhen) and leaf.reason_fact:
            paths.append(leaf.reason_fact)
        named.append((where, paths))
    named += [(f"notes[{i}]", [note.fact]) for i, note in enumerate(check.notes)]
    for where, paths in named:
        for path in paths:
            reason = facts.unknown_reason(path)
            if reason:
                problems.append(Problem(file, f"{where}.fact", reason))
            elif path.split(".")[0] not in check.collect:
                problems.append(Problem(file, f"{where}.fact",
                                        f"{path!r} reads fact group {path.split('.')[0]!r}, "
                                        "which collect does not list"))
    return problems


def load_check(path: Path) -> tuple[Check | None, list[Problem]]:
    file = _display(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except yaml.YAMLError as exc:
        return None, [Problem(file, "", f"not valid YAML: {exc}".splitlines()[0])]
    if not isinstance(raw, dict):
        return None, [Problem(file, "", "must be a mapping of check fields")]
    try:
        check = Check.model_validate(raw)
    except ValidationError as exc:
        return None, _pydantic_problems(file, exc)
    return check, _semantic_problems(file, check, path.stem, path.parent.name)


def load_mapping(path: Path) -> tuple[Mapping | None, list[Problem]]:
    file = _display(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
        return Mapping.model_validate(raw), []
    except FileNotFoundError:
        return None, [Problem(file, "", "missing: the clause mapping is required")]
    except yaml.YAMLError as exc:
        return None, [Problem(file, "", f"not valid YAML: {exc}".splitlines()[0])]
    except ValidationError as exc:
        return None, _pydantic_problems(file, exc)


def load_catalog(directory: Path = CATALOG_DIR, level: int | None = None) -> list[CatalogCheck]:
    """Every check in the catalog with its clause; raises CatalogError naming every problem.

    The validated catalog is kept (security.kept) under the hash of its files and of the
    code that reads them: a command validates the YAML again only after one changed."""
    made_from = digest([*sorted(p for p in directory.rglob("*.yml") if p.is_file()),
                        *sorted(Path(__file__).parent.glob("*.py"))])
    return kept(directory / "__pycache__", f"catalog-L{level}.pickle", made_from,
                lambda: _validated_catalog(directory, level), pickle.dumps, pickle.loads)


def _validated_catalog(directory: Path, level: int | None) -> list[CatalogCheck]:
    checks, problems = _load_checks(directory)
    mpath = directory / "mapping.yml"
    mapping, found = load_mapping(mpath)
    problems += found
    result: list[CatalogCheck] = []
    if mapping is not None:
        mfile = _display(mpath)
        problems += _unknown_mapped_ids(mapping, checks, problems, mfile)
        problems += _clause_problems(mapping, mfile)
        result = _with_clauses(checks, mapping, mfile, level, problems)
    if problems:
        raise CatalogError(problems)
    return result


def _load_checks(directory: Path) -> tuple[list[tuple[Check, str]], list[Problem]]:
    """Every check file of every scope that loads without a problem, with its display path."""
    problems: list[Problem] = []
    checks: list[tuple[Check, str]] = []
    for scope in ("host", "network"):
        for path in sorted((directory / scope).glob("*.yml")):
            check, found = load_check(path)
            problems += found
            if check is not None and not found:
                checks.append((check, _display(path)))
    return checks, problems


def _unknown_mapped_ids(mapping: Mapping, checks: list[tuple[Check, str]],
                        problems: list[Problem], mfile: str) -> list[Problem]:
    """Ids the mapping names that no check file has (a file that failed to load is already
    named in `problems`)."""
    ids = {c.id for c, _ in checks}
    return [Problem(mfile, f"checks.{cid}", "no check file has this id")
            for cid in mapping.checks
            if cid not in ids and not any(p.file.endswith(f"/{cid}.yml") for p in problems)]


def _clause_problems(mapping: Mapping, mfile: str) -> list[Problem]:
    """Clause numbers are level-3 clauses; 8.1.4 clauses are CES1 test units."""
    problems = []
    for clause, spec in mapping.clauses.items():
        if not re.match(CLAUSE, clause):
            problems.append(Problem(mfile, f"clauses.{clause}",
                                    f"not a GB/T 22239-2019 level-3 clause ({CLAUSE})"))
        if clause.startswith("8.1.4") and "-CES1-" not in spec.unit:
            problems.append(Problem(mfile, f"clauses.{clause}.unit",
                                    f"{spec.unit}: 8.1.4 clauses are L3-CES1 test units"))
    return problems


def _with_clauses(checks: list[tuple[Check, str]], mapping: Mapping, mfile: str,
                  level: int | None, problems: list[Problem]) -> list[CatalogCheck]:
    """Each check joined with its clause (at `level`, if given); a check without a clause,
    or claiming a level its clause lacks, is a problem appended to `problems`."""
    result: list[CatalogCheck] = []
    for check, file in checks:
        entry = mapping.checks.get(check.id)
        if entry is None:
            problems.append(Problem(mfile, f"checks.{check.id}",
                                    f"missing: check {file} has no clause"))
            continue
        clause = mapping.clauses.get(entry.clause)
        if clause is None:
            problems.append(Problem(mfile, f"checks.{check.id}.clause",
                                    f"{entry.clause!r} is not listed under clauses"))
            continue
        if 2 in check.levels and clause.level2 is None:
            problems.append(Problem(file, "levels", f"includes 2 but clause {entry.clause} "
                                    "has no level-2 equivalent in the mapping"))
            continue
        if level is not None and level not in check.levels:
            continue
        result.append(CatalogCheck(check, entry.clause, clause.unit, clause.level2,
                                   clause.title_zh, clause.title_en, file))
    return result


def load_clauses(directory: Path = CATALOG_DIR) -> dict[str, ClauseSpec]:
    mapping, problems = load_mapping(directory / "mapping.yml")
    if mapping is None:
        raise CatalogError(problems)
    return mapping.clauses


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(CATALOG_DIR.parent.parent))
    except ValueError:
        return str(path)
