"""The one exception root; the CLI turns these into short messages and exit codes."""

from __future__ import annotations

from dataclasses import dataclass


class OpsctlError(Exception):
    """A condition the user can act on. Exit code 2 unless a child says otherwise."""

    exit_code = 2

    def lines(self) -> list[str]:
        return [str(self)]


@dataclass(frozen=True)
class Problem:
    """One thing wrong in an input file: where it is and why it is wrong."""

    file: str
    key: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.key}" if self.key else self.file
        return f"{where}: {self.reason}"


class InvalidInput(OpsctlError):
    """One or more problems in files the user wrote; nothing was changed."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]


class NotFound(OpsctlError):
    """A named thing (site, host, run) does not exist."""


class LabError(OpsctlError):
    """The lab could not be brought to the requested state."""

    exit_code = 1


class PrerequisiteMissing(OpsctlError):
    """A tool or privilege the command needs is missing on this machine."""


class Ambiguous(OpsctlError):
    """The command could act on more than one thing and was not told which."""
