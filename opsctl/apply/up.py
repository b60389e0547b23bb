"""`opsctl up`: the whole main job in one call — mirror, lab, converge."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from opsctl import audit
from opsctl.apply.history import RunRecord
from opsctl.apply.runner import ApplyRequest, Sink, apply
from opsctl.lab import lifecycle
from opsctl.mirror.build import MirrorResult
from opsctl.mirror.build import build as build_mirror
from opsctl.reference_components.build import build_reference
from opsctl.site.model import Site

Progress = Callable[[str], None]


@dataclass
class UpResult:
    mirror: MirrorResult
    lab: lifecycle.UpResult
    run: RunRecord


def up(site: Site, request: ApplyRequest, progress: Progress, on_event: Sink) -> UpResult:
    """Build the mirror if the roles need more, bring the lab up, converge it."""
    progress("offline mirror")
    mirror = build_mirror(progress=progress)
    if mirror.rebuilt:
        audit.append("mirror.build", {}, f"ok: {mirror.packages} packages")
    progress("component artifacts")
    build_reference()
    progress(f"lab {site.name}")
    lab = lifecycle.up(site, progress)
    audit.append("lab.up", {"site": site.name}, f"ok: booted {len(lab.booted)}, "
                 f"already running {len(lab.already_running)}")
    progress(f"apply {request.playbook}")
    run = apply(site, request, on_event)
    return UpResult(mirror, lab, run)
