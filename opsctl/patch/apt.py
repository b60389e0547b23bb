"""What apt says on a host, and what it means (pure: text in, objects out).

- the commands: refresh the package lists (from the site's mirror only: the base role writes
  the hosts' apt sources), simulate, upgrade, list installed packages with their sources;
- `parse_simulation`: `apt-get -s dist-upgrade`'s `Inst pkg [old] (new suite [arch])` and
  `Remv pkg [old]` lines and its "kept back" list;
- `parse_installed`: dpkg-query's binary → (source, source version, version);
- `upgrade_fixes`: which of Debian's resolved CVEs each upgrade fixes (security/debsec.py's
  `fixed_between`: installed < fixed <= new).

Why `dist-upgrade`: Debian's point releases and security updates bring a kernel with a new
ABI as a new package (linux-image-6.1.0-N), which `upgrade` keeps back; `dist-upgrade` may
also remove packages, so a simulation that removes any is refused before anything runs. Held
packages (`apt-mark hold`) stay held either way and are reported as kept back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from security.debsec import Cve, SecurityData, fixed_between

ENV = ["env", "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C"]
UPDATE = [*ENV, "apt-get", "-q", "update"]
SIMULATE = [*ENV, "apt-get", "-s", "-o", "Debug::NoLocking=1", "dist-upgrade"]
# Configuration files the roles manage stay theirs (confold: keep the file on the host; the
# next apply brings the role's version anyway); confdef takes dpkg's default where it has one.
UPGRADE = [*ENV, "apt-get", "-y", "-q", "-o", "Dpkg::Options::=--force-confdef",
           "-o", "Dpkg::Options::=--force-confold", "dist-upgrade"]
INSTALLED = ["dpkg-query", "-W", "-f",
             "${binary:Package}\\t${source:Package}\\t${source:Version}\\t${Version}\\n"]
REBOOT_REQUIRED = ["test", "-e", "/run/reboot-required"]
BOOT_ID = ["cat", "/proc/sys/kernel/random/boot_id"]

_INST = re.compile(r"^Inst (?P<pkg>\S+) (?:\[(?P<old>[^\]]+)\] )?\((?P<new>\S+) (?P<origin>[^\[]*?)"
                   r"\s*\[(?P<arch>[^\]]+)\]\)")
_REMV = re.compile(r"^Remv (?P<pkg>\S+)(?: \[(?P<old>[^\]]+)\])?")


@dataclass(frozen=True)
class Change:
    package: str
    before: str | None  # None: newly installed
    after: str
    origin: str = ""  # e.g. Debian-Security:12/stable-security

    def as_dict(self) -> dict:
        return {"package": self.package, "before": self.before, "after": self.after,
                "origin": self.origin}


@dataclass(frozen=True)
class Simulation:
    changes: tuple[Change, ...] = ()  # upgrades and new installs, in apt's order
    removals: tuple[str, ...] = ()
    kept_back: tuple[str, ...] = ()

    @property
    def upgrades(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.before is not None)

    @property
    def empty(self) -> bool:
        return not self.changes and not self.removals


def parse_simulation(text: str) -> Simulation:
    """`apt-get -s dist-upgrade` (LC_ALL=C) → what it would install, upgrade, remove."""
    changes: list[Change] = []
    removals: list[str] = []
    kept: list[str] = []
    in_kept = False
    for line in text.splitlines():
        if in_kept and line.startswith("  "):
            kept += line.split()
            continue
        in_kept = line.startswith("The following packages have been kept back")
        inst = _INST.match(line)
        if inst:
            changes.append(Change(inst["pkg"], inst["old"], inst["new"], inst["origin"].strip()))
            continue
        remv = _REMV.match(line)
        if remv:
            removals.append(remv["pkg"])
    return Simulation(tuple(changes), tuple(removals), tuple(kept))


@dataclass(frozen=True)
class Installed:
    source: str
    source_version: str
    version: str


def parse_installed(text: str) -> dict[str, Installed]:
    """INSTALLED's lines → {binary package (without :arch): what dpkg says of it}."""
    out: dict[str, Installed] = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) != 4 or not parts[0]:
            continue
        name, source, source_version, version = parts
        out[name.split(":")[0]] = Installed(source or name.split(":")[0],
                                            source_version or version, version)
    return out


def source_after(installed: Installed | None, package: str, after: str) -> tuple[str, str]:
    """(source package, source version) of the new binary version. A binNMU (`+bN`, a
    rebuild without source change) carries its source's version without that suffix."""
    source = installed.source if installed else package
    return source, re.sub(r"\+b\d+$", "", after)


def upgrade_fixes(sim: Simulation, installed: dict[str, Installed],
                  data: SecurityData | None) -> dict[str, tuple[Cve, ...]]:
    """{binary package: the CVEs its upgrade fixes} for every upgrade that fixes any (one
    source's CVEs are named once per binary of it: what a reader looks up is the package)."""
    if data is None:
        return {}
    out: dict[str, tuple[Cve, ...]] = {}
    for change in sim.upgrades:
        have = installed.get(change.package)
        source, after = source_after(have, change.package, change.after)
        before = have.source_version if have else (change.before or "")
        cves = fixed_between(data, source, before, after)
        if cves:
            out[change.package] = cves
    return out
