"""The site model: one node's inventory and its site.yml, loaded and validated."""

from __future__ import annotations

from opsctl.site.model import Flow, Host, Site, Zone, load_site

__all__ = ["Flow", "Host", "Site", "Zone", "load_site"]
