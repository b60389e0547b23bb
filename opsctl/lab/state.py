"""Where a lab keeps its state, and what other parts of opsctl may read from it."""

from __future__ import annotations

from pathlib import Path

from opsctl.paths import state_dir


def lab_dir(site_name: str) -> Path:
    return state_dir() / "labs" / site_name


def facts_dir(site_name: str) -> Path:
    """Where apply kept Ansible's fact cache for a site's hosts until it gathered only the one
    fact the base role reads, each run (lab down still clears what an older apply left)."""
    return state_dir() / "facts" / site_name
