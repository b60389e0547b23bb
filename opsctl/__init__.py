"""opsctl: provisions, deploys, watches and proves the 农地云 node."""

from __future__ import annotations

__version__ = "0.1.0"
