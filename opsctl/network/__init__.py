"""Turning the flow whitelist into firewall rules (boundary router and host firewalls)."""
