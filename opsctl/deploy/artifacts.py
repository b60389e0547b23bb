"""A release's artifact: found (repository path or URL), present, and its sha256 right.

Checked before any host is touched, by `opsctl deploy` and by `opsctl apply` (which installs
each component's site version on hosts that have none).
"""

from __future__ import annotations

import hashlib
import urllib.request
from pathlib import Path

from opsctl.errors import InvalidInput, Problem
from opsctl.paths import cache_dir, project_root
from opsctl.site.model import Site
from opsctl.site.schema import ComponentSpec, ReleaseSpec
from opsctl.site.yamlfile import display_path


def site_file(site: Site) -> str:
    return display_path(site.directory / "group_vars" / "all" / "site.yml")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_url(artifact: str) -> bool:
    return artifact.startswith(("http://", "https://"))


def _fetch(url: str, sha256: str) -> Path:
    """URL artifacts are fetched once into the cache, named by their expected checksum."""
    target = cache_dir() / "artifacts" / f"{sha256}-{url.rsplit('/', 1)[-1]}"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".part")
        with urllib.request.urlopen(url, timeout=60) as response, tmp.open("wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        tmp.replace(target)
    return target


def release_problem(site: Site, name: str, version: str,
                    release: ReleaseSpec) -> tuple[Path | None, Problem | None]:
    """(local path, None) when the artifact is there with the right sha256, else a Problem."""
    key = f"site.components.{name}.releases.{version}"
    if is_url(release.artifact):
        try:
            path = _fetch(release.artifact, release.sha256)
        except OSError as exc:
            return None, Problem(site_file(site), f"{key}.artifact",
                                 f"cannot fetch {release.artifact}: {exc}")
    else:
        path = (project_root() / release.artifact).resolve()
        if not path.is_file():
            return None, Problem(
                site_file(site), f"{key}.artifact", f"missing artifact {path} (reference "
                "components: python -m opsctl.reference_components.build)")
    actual = sha256_of(path)
    if actual != release.sha256:
        return None, Problem(site_file(site), f"{key}.sha256",
                             f"checksum mismatch: {path} has sha256 {actual}")
    return path, None


def verify_release(site: Site, name: str, version: str) -> Path:
    """The artifact of COMPONENT VERSION on the control node; InvalidInput when it is not right."""
    component = component_spec(site, name)
    release = component.releases.get(version)
    if release is None:
        raise InvalidInput([Problem(site_file(site), f"site.components.{name}.releases",
                                    f"no release {version!r} (known: "
                                    f"{', '.join(component.releases)})")])
    path, problem = release_problem(site, name, version, release)
    if problem:
        raise InvalidInput([problem])
    assert path is not None
    return path


def component_spec(site: Site, name: str) -> ComponentSpec:
    component = site.spec.components.get(name)
    if component is None:
        known = ", ".join(site.spec.components) or "none"
        raise InvalidInput([Problem(site_file(site), "site.components",
                                    f"unknown component {name!r} (known: {known})")])
    return component


def site_artifacts(site: Site) -> dict[str, str]:
    """{component: local artifact path} of each component's site version, all verified;
    every problem at once."""
    found: dict[str, str] = {}
    problems: list[Problem] = []
    for name, component in site.spec.components.items():
        path, problem = release_problem(site, name, component.version,
                                        component.releases[component.version])
        if problem:
            problems.append(problem)
        else:
            found[name] = str(path)
    if problems:
        raise InvalidInput(problems)
    return found
