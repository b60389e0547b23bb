"""Which site a command acts on, and how it was named.

In order: `--site`, else the OPSCTL_SITE environment variable, else the default the operator
stored with `opsctl site use NAME`, else `reference` only when inventory/ holds no other site.
Otherwise the command stops (exit 2) before anything runs: once provinces have their own
sites, a command must never act on `reference` by accident.

Edge: reads the environment, inventory/ and the state directory; no click, never prints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from opsctl.errors import Ambiguous, NotFound
from opsctl.paths import ensure_private_dir, project_root, site_dir, state_dir
from opsctl.site.model import Site, load_site

ENV = "OPSCTL_SITE"
REFERENCE = "reference"

# Where each source comes from, as the one-line announcement says it.
FLAG, ENVIRONMENT, STORED, ALONE = "--site", ENV, "opsctl site use", "only site"
HOW = {
    FLAG: "from --site",
    ENVIRONMENT: f"from {ENV}",
    STORED: "from opsctl site use",
    ALONE: "the only site in inventory/",
}


@dataclass(frozen=True)
class SiteChoice:
    """A site as load_site takes it (a name or a directory) and where that came from."""

    site: str
    source: str  # one of FLAG, ENVIRONMENT, STORED, ALONE

    @property
    def how(self) -> str:
        return HOW[self.source]

    def announcement(self, loaded: Site | None = None) -> str:
        """The first line a command that changes something prints: `site NAME (from --site)`."""
        name = loaded.name if loaded else self.site
        where = f" at {loaded.directory}" if loaded and self.site != loaded.name else ""
        return f"site {name}{where} ({self.how})"

    def as_dict(self) -> dict[str, str]:
        return {"site": self.site, "source": self.source, "how": self.how}


def choice_file() -> Path:
    """The operator's stored default (`opsctl site use`): one line, a name or a directory."""
    return state_dir() / "site"


def inventory_sites(root: Path | None = None) -> list[str]:
    """The site directories under inventory/, by name."""
    inventory = (root or project_root()) / "inventory"
    if not inventory.is_dir():
        return []
    return sorted(p.name for p in inventory.iterdir()
                  if p.is_dir() and not p.name.startswith((".", "_")))


def stored() -> str | None:
    try:
        text = choice_file().read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return text or None


def resolve(flag: str | None) -> SiteChoice:
    """The site a command acts on (see the module's docstring); Ambiguous when unnamed."""
    if flag:
        return SiteChoice(flag, FLAG)
    env = os.environ.get(ENV, "").strip()
    if env:
        return SiteChoice(env, ENVIRONMENT)
    remembered = stored()
    if remembered:
        return SiteChoice(remembered, STORED)
    others = [name for name in inventory_sites() if name != REFERENCE]
    if not others:
        return SiteChoice(REFERENCE, ALONE)
    raise Ambiguous(
        f"which site? inventory/ holds {', '.join(sorted([*others, REFERENCE]))}: name it "
        f"with --site NAME, or {ENV}=NAME, or once with `opsctl site use NAME`")


def resolve_and_load(flag: str | None) -> tuple[SiteChoice, Site]:
    choice = resolve(flag)
    try:
        return choice, load_site(choice.site)
    except NotFound as exc:
        if choice.source == FLAG:
            raise
        raise NotFound(f"{exc} ({choice.how})") from None


def use(site: str) -> tuple[str, Site]:
    """Store SITE as this machine's default after proving it loads; returns what was stored.

    A name is stored as given; a directory outside inventory/ as its absolute path, so the
    default does not depend on the directory the next command runs in.
    """
    loaded = load_site(site)  # InvalidInput / NotFound: nothing stored
    directory = site_dir(site).resolve()
    inventory = (project_root() / "inventory").resolve()
    value = directory.name if directory.parent == inventory else str(directory)
    path = choice_file()
    ensure_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(value + "\n", encoding="utf-8")
    tmp.replace(path)
    return value, loaded


def forget() -> bool:
    """Remove the stored default; True if there was one."""
    try:
        choice_file().unlink()
    except FileNotFoundError:
        return False
    return True
