"""Is the repository as fresh as the site's backup policy asks? (pure)"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opsctl.backup.info import Stanza


@dataclass(frozen=True)
class AgeVerdict:
    ok: bool
    reason: str
    newest: str | None  # label of the newest good backup
    age_seconds: float | None
    max_age_seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "reason": self.reason, "newest": self.newest,
                "age_seconds": self.age_seconds, "max_age_seconds": self.max_age_seconds}


def judge_age(stanza: Stanza, now: datetime, max_age_hours: float) -> AgeVerdict:
    """The newest backup that did not fail must have finished within max_age_hours of now."""
    limit = max_age_hours * 3600
    good = [b for b in stanza.backups if not b.error]
    if not good:
        return AgeVerdict(False, f"stanza {stanza.name} holds no backup", None, None, limit)
    newest = max(good, key=lambda b: b.stopped)
    age = (now - newest.stopped).total_seconds()
    if age > limit:
        return AgeVerdict(False, f"newest backup {newest.label} is {age / 3600:.1f} h old, "
                          f"policy allows {max_age_hours:g} h", newest.label, age, limit)
    return AgeVerdict(True, f"newest backup {newest.label} is {age / 3600:.1f} h old "
                      f"(policy {max_age_hours:g} h)", newest.label, age, limit)
