"""A site's documented exceptions (inventory/SITE/security/exceptions.yml) as data.

Where a site cannot meet a check, its exception records why, the compensating control, who
approved it and until when. The evaluator never turns an exception into a pass: a failing
check covered by an unexpired exception keeps its evidence and becomes `exception`, and its
unit goes to the assessor (人工核查), who judges the compensating control. An expired exception
does not apply. This module validates the file (pure: the caller reads it) and applies the
entries to evaluated results.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

EXCEPTIONS_FILE = "security/exceptions.yml"  # under the site's directory
APPLIED, UNUSED, EXPIRED = "applied", "unused", "expired"


class ExceptionEntry(BaseModel):
    """One documented exception: a check, the hosts it covers, and its justification."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    check: str = Field(min_length=1)
    hosts: Literal["all"] | tuple[str, ...]
    reason: str = Field(min_length=1)
    compensating_control: str = Field(min_length=1)
    approver: str = Field(min_length=1)
    expires: dt.date

    @field_validator("hosts", mode="before")
    @classmethod
    def _some_hosts(cls, value: Any) -> Any:
        if value == "all":
            return value
        if not isinstance(value, list) or not value \
                or not all(isinstance(h, str) and h for h in value):
            raise ValueError('expected "all" or a list of host names')
        return tuple(value)

    @field_validator("expires", mode="before")
    @classmethod
    def _iso_date(cls, value: Any) -> Any:
        if isinstance(value, dt.datetime) or not isinstance(value, dt.date | str):
            raise ValueError("expected a date YYYY-MM-DD")
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                raise ValueError("expected a date YYYY-MM-DD") from None
        return value

    def covers(self, target: str) -> bool:
        return self.hosts == "all" or target in self.hosts

    def expired(self, today: dt.date) -> bool:
        """An exception is valid through its expiry date and lapses the day after."""
        return today > self.expires

    def details(self, state: str) -> dict[str, Any]:
        return {"reason": self.reason, "compensating_control": self.compensating_control,
                "approver": self.approver, "expires": self.expires.isoformat(), "state": state}

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check,
                "hosts": "all" if self.hosts == "all" else list(self.hosts),
                **self.details("")}


@dataclass(frozen=True)
class ExceptionProblem:
    key: str
    reason: str


def parse_exceptions(data: Any, check_ids: Iterable[str],
                     targets: Iterable[str]) -> tuple[list[ExceptionEntry], list[ExceptionProblem]]:
    """Validate the file's parsed YAML (None: an empty file, no exceptions).

    `targets`: the names an entry may cover (the site's hosts, and the site's own name for its
    network checks). Every problem names its key (`[2].hosts`) and the reason."""
    if data is None:
        return [], []
    if not isinstance(data, list):
        return [], [ExceptionProblem("", "expected a list of exceptions")]
    known, names = set(check_ids), set(targets)
    entries, problems = [], []
    for i, item in enumerate(data):
        try:
            entry = ExceptionEntry.model_validate(item)
        except ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("literal"))
                problems.append(ExceptionProblem(f"[{i}].{loc}" if loc else f"[{i}]",
                                                 _message(err)))
            continue
        if entry.check not in known:
            problems.append(ExceptionProblem(f"[{i}].check", f"no check {entry.check!r} in the "
                                             "catalog (opsctl check catalog)"))
        if entry.hosts != "all":
            for name in entry.hosts:
                if name not in names:
                    problems.append(ExceptionProblem(f"[{i}].hosts", f"no host {name!r} in "
                                                     "this site"))
        entries.append(entry)
    return entries, problems


def _message(err: dict[str, Any]) -> str:
    if err["type"] == "missing":
        return "missing"
    if err["type"] == "extra_forbidden":
        return "unknown key"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")
