"""The probe package `opsctl patch` upgrades in the lab (test_patch_lab.py and
tests/bench/bench_patch.py): a tiny package built here with dpkg-deb at any version, installed
on a host by hand (`dpkg -i`), a newer version published into the lab's mirror (the repository
the lab serves, re-indexed and signed with the mirror's own key) for `patch` to find there.

Edge: dpkg-deb on this machine, the mirror's directory, hosts through the site's transport.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from opsctl.mirror.build import sign_index
from opsctl.transport import Result, Transport

PROBE = "opsctl-patch-probe"


def build_deb(directory: Path, version: str) -> Path:
    root = directory / f"{PROBE}-{version}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr" / "share" / PROBE).mkdir(parents=True)
    (root / "usr" / "share" / PROBE / "version").write_text(version + "\n")
    (root / "DEBIAN" / "control").write_text(
        f"Package: {PROBE}\nVersion: {version}\nArchitecture: all\nMaintainer: opsctl tests "
        "<tests@opsctl.invalid>\nSection: misc\nPriority: optional\nDescription: a package "
        "opsctl patch's lab test upgrades\n")
    deb = directory / f"{PROBE}_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(deb)],
                   check=True, capture_output=True)
    return deb


def install(transport: Transport, host: str, deb: Path) -> Result:
    """`deb` copied to `host` and installed there with `dpkg -i` (an older version too)."""
    return transport.run(host, ["sh", "-c", f"cat >/tmp/{deb.name} && dpkg -i /tmp/{deb.name}"
                                            f" && rm -f /tmp/{deb.name}"],
                         stdin=deb.read_bytes(), timeout=120)


def installed_version(transport: Transport, host: str) -> str:
    done = transport.run(host, ["dpkg-query", "-W", "-f", "${Version}", PROBE], timeout=30)
    return done.stdout.strip() if done.rc == 0 else ""


def mirror_debs(repo: Path) -> list[Path]:
    return sorted(repo.glob("*.deb"))


def probes_in(repo: Path) -> list[Path]:
    """The probe's packages the mirror holds (none unless a test or benchmark is running)."""
    return sorted(repo.glob(f"{PROBE}_*.deb"))


def publish(repo: Path, deb: Path) -> Path:
    """`deb` into the mirror, the index re-signed; returns where it now is."""
    published = repo / deb.name
    published.write_bytes(deb.read_bytes())
    sign_index(repo, mirror_debs(repo))
    return published


def withdraw(repo: Path, published: Path) -> None:
    """`published` out of the mirror (if it is there), the index re-signed."""
    published.unlink(missing_ok=True)
    sign_index(repo, mirror_debs(repo))


def purge(transport: Transport, host: str) -> None:
    """The probe removed from `host` and its package lists refreshed (the mirror's index no
    longer names it); failures are ignored, as a cleanup's."""
    transport.run(host, ["dpkg", "--purge", PROBE], timeout=120)
    transport.run(host, ["apt-get", "-q", "update"], timeout=300)
