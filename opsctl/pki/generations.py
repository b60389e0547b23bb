"""The site CA's generations and where a rollover stands, kept explicit on disk.

A rollover (`opsctl pki rotate --ca`, opsctl/pki/rollover.py) moves a site from CA
generation N (A) to N+1 (B) through phases, each recorded in `rollover.json` in the site's
PKI directory before the next begins, so that an interrupted run is taken up where it
stopped rather than guessed from which files exist or their times:

    idle ─(--ca)→ trust-both → switch → reissue → overlap ─(--finish)→ finishing → idle

A site without the file is at generation 1, idle (every site made before rollovers).
`describe` and `next_command` are pure: what an operator is told.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from opsctl.errors import InvalidInput, Problem

STATE_FILE = "rollover.json"

IDLE = "idle"
TRUST_BOTH = "trust-both"  # B made, the bundle A+B written here; not on every host yet
SWITCH = "switch"  # every host trusts A and B; A still signs
REISSUE = "reissue"  # B signs; the hosts' certificates of A still to be replaced
OVERLAP = "overlap"  # every certificate is B's, A still trusted: `--finish` next
FINISHING = "finishing"  # the bundle is B alone here; not on every host yet
PHASES = (IDLE, TRUST_BOTH, SWITCH, REISSUE, OVERLAP, FINISHING)
STEP_ONE = (TRUST_BOTH, SWITCH, REISSUE)  # what `--ca` resumes


@dataclass(frozen=True)
class Rollover:
    generation: int = 1  # the generation that signs now
    phase: str = IDLE
    new: int | None = None  # the generation being rolled to
    old_fingerprint: str | None = None  # SHA-256 of A's certificate (DER)
    new_fingerprint: str | None = None  # of B's
    started: str | None = None
    updated: str | None = None

    @property
    def in_progress(self) -> bool:
        return self.phase != IDLE

    @property
    def old(self) -> int:
        """A: the generation rolled from (the current one when idle)."""
        if self.phase in (REISSUE, OVERLAP, FINISHING):
            return self.generation - 1
        return self.generation

    def at(self, phase: str, **changes: object) -> Rollover:
        return replace(self, phase=phase, updated=now(), **changes)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def load(directory: Path) -> Rollover:
    path = directory / STATE_FILE
    if not path.exists():
        return Rollover()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        state = Rollover(**data)
    except (ValueError, TypeError) as exc:
        raise InvalidInput([Problem(str(path), "", f"not a rollover state ({exc})")]) from None
    if state.phase not in PHASES:
        raise InvalidInput([Problem(str(path), "phase", f"unknown phase {state.phase!r}")])
    return state


def save(directory: Path, state: Rollover) -> None:
    path = directory / STATE_FILE
    new = path.with_name(path.name + ".new")
    new.write_text(json.dumps(asdict(state), indent=2) + "\n", encoding="utf-8")
    os.chmod(new, 0o600)
    os.replace(new, path)


def describe(state: Rollover) -> str:
    """Where the rollover stands, in one line."""
    a, b = f"CA {state.old}", f"CA {state.new or state.generation + 1}"
    return {
        IDLE: f"no CA rollover in progress; CA {state.generation} signs and is trusted alone",
        TRUST_BOTH: f"rollover to {b}: {b} made on the control node; not every host trusts "
                    "it yet",
        SWITCH: f"rollover to {b}: every host trusts {a} and {b}; {a} still signs",
        REISSUE: f"rollover to {b}: {b} signs; host certificates of {a} still to be replaced",
        OVERLAP: f"rollover to {b}: every certificate is {b}'s; the hosts still trust {a} too",
        FINISHING: f"rollover to {b}: trust of {b} alone decided; not on every host yet",
    }[state.phase]


def next_command(state: Rollover) -> str:
    """What to run next (the CA rollover's two commands)."""
    if state.phase in (OVERLAP, FINISHING):
        return "opsctl pki rotate --ca --finish"
    if state.phase in STEP_ONE:
        return "opsctl pki rotate --ca (takes the rollover up where it stopped)"
    return "nothing (`opsctl pki rotate --ca` starts a rollover)"
