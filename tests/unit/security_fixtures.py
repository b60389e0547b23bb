"""Recorded facts and the overlays that make a passing and a failing host from them."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

FACTS = Path(__file__).resolve().parent / "facts"


def load(name: str) -> dict[str, Any]:
    return json.loads((FACTS / name).read_text(encoding="utf-8"))


def merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Dicts merge key by key; everything else (and a fact that was an error) is replaced."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if key.startswith("_"):
            continue
        current = out.get(key)
        if isinstance(current, dict) and isinstance(value, dict) and set(current) != {"error"}:
            out[key] = merge(current, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def recorded() -> dict[str, Any]:
    """The control node's facts as `opsctl check --local` would evaluate them."""
    facts = dict(load("control-node.json")["facts"])
    from security.local import NO_SITE_CONTEXT

    facts["context"] = dict(NO_SITE_CONTEXT)
    return facts


def with_security_data(facts: dict[str, Any]) -> dict[str, Any]:
    """`debian_security` as the control node adds it: the host's packages judged against the
    recorded tracker excerpt and mirror index (facts/debsec/)."""
    from security.debsec import SecurityData, host_facts, mirror_sources, reduce_tracker

    raw = json.loads((FACTS / "debsec" / "tracker-excerpt.json").read_text(encoding="utf-8"))
    data = SecurityData.from_document(reduce_tracker(raw, fetched="2026-12-01T02:00:00+00:00",
                                                     source="tracker-excerpt.json"))
    mirror = mirror_sources((FACTS / "debsec" / "Packages").read_text(encoding="utf-8"))
    # scanned a day after the data was fetched: within the bound (security/debsec.py)
    scanned = datetime.fromisoformat(data.fetched) + timedelta(days=1)
    facts["debian_security"] = host_facts(facts["packages"], data, mirror, scanned)
    return facts


def passing_host() -> dict[str, Any]:
    return with_security_data(merge(recorded(), load("overlay-passing.json")))


def failing_host() -> dict[str, Any]:
    return with_security_data(merge(recorded(), load("overlay-failing.json")))
