"""Installed Debian packages, with each one's source package and version (what the control
node judges against Debian's security data)."""

from __future__ import annotations

from security.collector.base import read

DPKG_STATUS = "/var/lib/dpkg/status"


def parse_dpkg_status(text: str) -> dict:
    """dpkg's status file → installed binary packages with their versions, and each one's
    source package and source version: what `dpkg-query -W -f '${source:Package}
    ${source:Version}'` derives from the same file (`Source: NAME (VERSION)`; no version: the
    binary's; no Source field: the binary itself)."""
    installed: dict[str, str] = {}
    sources: dict[str, list[str]] = {}
    for block in text.split("\n\n"):
        name = version = status = source = ""
        for line in block.splitlines():
            if line.startswith("Package: "):
                name = line[9:].strip()
            elif line.startswith("Version: "):
                version = line[9:].strip()
            elif line.startswith("Status: "):
                status = line[8:].strip()
            elif line.startswith("Source: "):
                source = line[8:].strip()
        if name and status.endswith(" installed"):
            installed[name] = version
            src_name, _, src_version = source.partition(" (")
            sources[name] = [src_name.strip() or name, src_version.rstrip(")").strip() or version]
    return {"count": len(installed), "installed": installed, "sources": sources}


def gather_packages() -> str:
    return read(DPKG_STATUS)


def parse_packages(text: str) -> dict:
    return parse_dpkg_status(text)


def fact_packages() -> dict:
    return parse_packages(gather_packages())
