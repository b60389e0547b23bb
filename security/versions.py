"""Debian version ordering (deb-version(7)), by python-debian: a thin wrapper, memoised.

python-debian uses apt_pkg's comparison when python3-apt is importable and its own
implementation of the same algorithm otherwise. Comparing against Debian's security data asks
the same pairs again and again (every host of a site runs mostly the same versions), so parsed
versions and answers are cached. Control node only: the hosts' own scan never imports this.
"""

from __future__ import annotations

from functools import lru_cache

from debian.debian_support import Version


@lru_cache(maxsize=65536)
def parse(version: str) -> Version:
    """A parsed Debian version; ValueError for a string that is not one."""
    return Version(version)


@lru_cache(maxsize=262144)
def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as Debian version a is older than, equal to or newer than b."""
    va, vb = parse(a), parse(b)
    return -1 if va < vb else (1 if va > vb else 0)


def older(a: str, b: str) -> bool:
    """Version a sorts before version b."""
    return compare_versions(a, b) < 0
