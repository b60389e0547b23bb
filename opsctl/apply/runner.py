"""Run a site's playbook through ansible-runner and keep the record.

Validation happens before Ansible starts: a site that does not validate, an unknown
--limit, a tag the playbook does not carry, a missing playbook or mirror key stop here with
exit 2 and nothing touched.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from opsctl import audit
from opsctl.apply import history
from opsctl.apply.engine import engine_env
from opsctl.apply.events import HostEvent, RunTally
from opsctl.apply.reach import ReachedSite, reach
from opsctl.apply.tags import playbook_tags, split_tags
from opsctl.connection import ansible_sudo_refused
from opsctl.deploy.artifacts import site_artifacts
from opsctl.errors import InvalidInput, NotFound, OpsctlError, PrerequisiteMissing, Problem
from opsctl.mirror.build import public_key_path
from opsctl.paths import project_root
from opsctl.pki import ensure_host_certificates
from opsctl.secrets import ensure_site_secrets
from opsctl.site.model import Site

Sink = Callable[[HostEvent], None]


class NothingToRetry(OpsctlError):
    exit_code = 0


@dataclass(frozen=True)
class ApplyRequest:
    playbook: str = "site.yml"
    limit: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    skip_tags: tuple[str, ...] = ()
    check: bool = False
    diff: bool = False
    retry_failed: bool = False
    engine: str = "auto"
    forks: int = 10
    via: str | None = None  # the site's own connection, or "lab"


def _playbook_path(name: str) -> Path:
    path = project_root() / "playbooks" / name
    if not path.suffix:
        path = path.with_suffix(".yml")
    if not path.is_file():
        raise NotFound(f"playbook {name!r}: no file {path}")
    return path


def _check_tags(playbook: Path, request: ApplyRequest) -> None:
    known = playbook_tags(playbook, project_root() / "roles")
    if known is None:  # a templated tag: only a run knows what it selects
        return
    unknown = [(option, tag) for option, given in (("--tags", request.tags),
                                                   ("--skip-tags", request.skip_tags))
               for tag in split_tags(given) if tag not in known]
    if unknown:
        raise InvalidInput([Problem(option, tag, f"no play, role or task of playbook "
                                    f"{playbook.name} carries this tag")
                            for option, tag in unknown])


def _retry_limit(site: Site) -> tuple[str, ...]:
    last = history.last_finished(site.name, applies_only=True)
    if last is None:
        raise NotFound(f"--retry-failed: site {site.name} has no earlier run")
    if not last.failed_hosts:
        raise NothingToRetry(f"--retry-failed: run {last.id} had no failed or unreachable host")
    return tuple(last.failed_hosts)


def apply(site: Site, request: ApplyRequest, on_event: Sink = lambda _e: None) -> history.RunRecord:
    """Converge `site`; returns the run record (result ok when no host failed)."""
    playbook = _playbook_path(request.playbook)
    if request.limit:
        # a host, a group, a zone or all; `!x` leaves x out, `&x` keeps only what is in x
        site.require_hosts([name.lstrip("!&") for name in request.limit], "--limit",
                           also=[*site.groups, *site.zones, "all"])
    _check_tags(playbook, request)
    limit = _retry_limit(site) if request.retry_failed else request.limit
    # Every component's site release: present with the right checksum, or exit 2 here.
    artifacts = site_artifacts(site)
    keyring = public_key_path()
    if not keyring.exists():
        raise PrerequisiteMissing(f"no offline mirror key at {keyring}: "
                                  "run `opsctl mirror build` first")
    engine, env = engine_env(request.engine)
    with reach(site, request.via, limit) as reached:
        return _run(site, request, limit, playbook, artifacts, keyring, engine, env, reached,
                    on_event)


def _run(site: Site, request: ApplyRequest, limit: tuple[str, ...], playbook: Path,
         artifacts: dict, keyring: Path, engine: str, env: dict[str, str], reached: ReachedSite,
         on_event: Sink) -> history.RunRecord:
    import ansible_runner  # noqa: PLC0415 - slow import, only when a run happens

    pki, _issued = ensure_host_certificates(site)
    secrets = ensure_site_secrets(site.name, site.spec.provinces)

    record = history.RunRecord(
        id=history.new_run_id(), site=site.name,
        started=datetime.now(UTC).isoformat(timespec="seconds"),
        request={**asdict(request), "limit": list(limit)}, engine=engine)
    history.save(record)
    directory = history.run_dir(record.id)
    env |= {
        # ansible-playbook from the same environment as opsctl, wherever PATH points.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(project_root() / "ansible.cfg"),
        # Ansible's 10 s connect timeout lost hosts on this shared 2-core machine under
        # load (seen: db1 and lb1 unreachable at load 40); a dead host still fails in 30 s.
        "ANSIBLE_TIMEOUT": "30",
        "ANSIBLE_NOCOLOR": "1",
        # ansible-runner turns host key checking off unless told; the site's keys are pinned
        # (opsctl site trust) and a changed one must be refused by Ansible and Mitogen alike.
        "ANSIBLE_HOST_KEY_CHECKING": "True",
    }
    cmdline = []
    if request.check:
        cmdline.append("--check")
    if request.diff:
        cmdline.append("--diff")
    tally = RunTally()

    def handle(event: dict) -> bool:
        outcome = tally.feed(event)
        if outcome is not None:
            on_event(outcome)
        return True

    start = time.monotonic()
    runner = ansible_runner.run(
        private_data_dir=str(directory),
        project_dir=str(project_root()),
        playbook=str(playbook),
        inventory=[str(site.directory), str(reached.inventory)],
        extravars={"opsctl_mirror_keyring": str(keyring),
                   # where the hosts find the mirror (site.mirror, else the control node)
                   "opsctl_mirror": site.mirror.as_vars(),
                   **reached.extravars,
                   "opsctl_pki_dir": str(pki.directory),
                   # Roles keep generated passwords here with the `password` lookup:
                   # made on first use, 0600, never in the repository.
                   "opsctl_secrets_dir": str(secrets),
                   # a province's copy of the national node's CA (site.national)
                   **({"opsctl_national_ca_file": str(site.national_ca_file)}
                      if site.national_ca_file else {}),
                   # {component: verified artifact of its site version on the control node}
                   "opsctl_component_artifacts": artifacts,
                   # the components, each after the ones it depends on (depends_on)
                   "opsctl_component_order": site.component_order()},
        envvars=env,
        limit=",".join(limit) or None,
        tags=",".join(request.tags) or None,
        skip_tags=",".join(request.skip_tags) or None,
        forks=request.forks,
        cmdline=" ".join(cmdline) or None,
        event_handler=handle,
        quiet=True,
        ident="ansible",
    )
    record.seconds = round(time.monotonic() - start, 2)
    record.finished = datetime.now(UTC).isoformat(timespec="seconds")
    record.rc = runner.rc
    record.hosts = {h: {**asdict(t), "status": t.status} for h, t in sorted(tally.hosts.items())}
    record.failures = [asdict(f) for f in tally.failures]
    for failure in record.failures:
        failure["message"] = ansible_sudo_refused(reached.conn, failure["host"],
                                                  failure["message"]) or failure["message"]
    if runner.status == "successful" and not record.failed_hosts:
        record.result = "ok"
    elif tally.hosts:
        record.result = "failed"
    else:
        record.result = "error"
    history.save(record)
    audit.append("apply", {"site": site.name, "run": record.id, "playbook": request.playbook,
                           "limit": list(limit), "tags": list(request.tags),
                           "check": request.check}, _summary(record))
    return record


def _summary(record: history.RunRecord) -> str:
    if record.result == "ok":
        return f"ok: {len(record.hosts)} hosts, {record.changed} changed"
    if record.result == "error":
        return f"error: ansible-runner rc {record.rc}, no host ran (see runs show {record.id})"
    return f"failed: {', '.join(record.failed_hosts)}"


def stdout_path(record: history.RunRecord) -> Path:
    return history.run_dir(record.id) / "artifacts" / "ansible" / "stdout"
