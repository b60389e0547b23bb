"""`opsctl pki rotate --ca [--finish]`: the site CA rolled over with an overlap.

Step one (`--ca`) takes the site from CA A to CA B so that no peer ever meets a certificate
signed by a CA it does not trust: B is made beside A, every host is given the bundle A+B
(and every consumer takes it up), issuing switches to B, and every host certificate is
reissued by B (`pki rotate` of every host). Step two (`--finish`) is refused until every
certificate on every host is B's; then the bundle becomes B alone everywhere. A stays on the
control node as `ca-previous.*`.

Each phase is recorded (opsctl/pki/generations.py) before the next begins; a run that stops
is taken up where it stood by running the same command again. The control node's files:

    ca.crt, ca.key            the CA that signs (A, then B after the switch)
    ca-next.crt, ca-next.key  B, until the switch
    ca-previous.crt/.key      A, from the switch on (an older one goes to retired/)
    trust.crt, trust.d/       the bundle the hosts trust, and the same one file per CA
    rollover.json             the generation that signs and where a rollover stands

The file moves and the refusals are decided here from the state and pki status's answers
(`not_signed_by` is pure); the applies and probes are the edge (opsctl.apply, pki status).
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsctl import audit
from opsctl.apply.events import HostEvent
from opsctl.apply.runner import ApplyRequest, apply
from opsctl.errors import OpsctlError
from opsctl.pki import generations
from opsctl.pki.certs import CertInfo, common_name, from_pem_file
from opsctl.pki.generations import (
    FINISHING,
    IDLE,
    OVERLAP,
    REISSUE,
    SWITCH,
    TRUST_BOTH,
    Rollover,
)
from opsctl.pki.inventory import ca_uses, trust_tags
from opsctl.pki.issue import SitePki, ca_subject, existing, make_ca, write_trust
from opsctl.pki.rotate import (
    PLAYBOOK,
    VERIFY_SECONDS,
    Step,
    check_tags,
    rotate,
    verify,
)
from opsctl.pki.status import PkiStatus, Probe, ca_names, gather, transport_probe
from opsctl.site.model import Site
from opsctl.transport import for_site

ACTION = "pki rotate --ca"
LOCK_FILE = "rollover.lock"


class RolloverRefused(OpsctlError):
    """The rollover cannot take this step now; nothing was changed."""


class NotAllOnNewCa(OpsctlError):
    """`--finish` while a certificate of the old CA is still on a host (a finding)."""

    exit_code = 1


@dataclass(frozen=True)
class CaFiles:
    """The rollover's files in the site's PKI directory (ca.crt/ca.key: SitePki's)."""

    pki: SitePki

    def next(self, suffix: str) -> Path:
        return self.pki.directory / f"ca-next.{suffix}"

    def previous(self, suffix: str) -> Path:
        return self.pki.directory / f"ca-previous.{suffix}"

    @property
    def retired(self) -> Path:
        return self.pki.directory / "retired"


@dataclass(frozen=True)
class Done:
    """One step this run took."""

    step: str
    result: str  # ok | failed: why
    run: str | None = None  # the apply run that carried it

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "result": self.result, "run": self.run}


@dataclass
class RolloverResult:
    site: str
    finish: bool
    stood: str  # where the rollover stood when this run began
    state: Rollover
    steps: list[Done] = field(default_factory=list)
    reloads: tuple[Step, ...] = ()  # what a change of the bundle made each consumer do
    status: PkiStatus | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def stands(self) -> str:
        return generations.describe(self.state)

    @property
    def next(self) -> str:
        if self.problems and self.state.phase != IDLE:
            again = "opsctl pki rotate --ca" + (" --finish" if self.finish else "")
            return f"{again} again, once the problems above are fixed"
        return generations.next_command(self.state)

    def as_dict(self) -> dict[str, Any]:
        return {"site": self.site, "finish": self.finish, "stood": self.stood,
                "phase": self.state.phase, "generation": self.state.generation,
                "stands": self.stands, "next": self.next,
                "steps": [d.as_dict() for d in self.steps],
                "reloads": [{"host": s.host, "service": s.service, "action": s.action}
                            for s in self.reloads],
                "status": self.status.as_dict() if self.status else None,
                "problems": self.problems, "ok": self.ok}


# --- pure: what the hosts' answers mean ----------------------------------------------------

def not_signed_by(status: PkiStatus, ca: CertInfo) -> list[str]:
    """Every host certificate file and every presented certificate not signed by `ca`, and
    every host not reached (it cannot be shown to be done): one line each."""
    out = []
    for host in status.hosts:
        if host.error:
            out.append(f"{host.name}: not reached")
            continue
        for f in host.files:
            if f.kind == "host" and (f.deployed is None or f.deployed.issuer != ca.subject):
                by = common_name(f.deployed.issuer) if f.deployed else f.error or "unread"
                out.append(f"{host.name}: {f.path} ({by})")
        for p in host.presented:
            if p.cert is None or p.cert.issuer != ca.subject:
                by = common_name(p.cert.issuer) if p.cert else p.error or "nothing"
                out.append(f"{host.name}: {p.service} presents {by}'s")
    return out


def trust_problems(status: PkiStatus) -> list[str]:
    """Every host not reached or not holding exactly the control node's trust bundle."""
    out = []
    for host in status.hosts:
        if host.error:
            out.append(f"{host.name}: not reached")
        out += [f"{host.name}: {f.path}: trusts {ca_names(f.bundle)}, not "
                f"{ca_names(f.trusted)}" for f in host.files if f.kind == "ca" and not f.matches]
    return out


def trust_settled(status: PkiStatus) -> bool:
    return not trust_problems(status)


def trust_steps(site: Site) -> tuple[Step, ...]:
    return tuple(Step(u.host, u.service, u.reload) for u in ca_uses(site))


# --- the edge ------------------------------------------------------------------------------

@contextmanager
def one_at_a_time(pki: SitePki) -> Iterator[None]:
    """Two rollovers of one site at once would each make a CA: the second is refused."""
    with (pki.directory / LOCK_FILE).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RolloverRefused(f"pki rotate --ca: another run is rolling site "
                                  f"{pki.directory.name}'s CA over now; nothing was changed"
                                  ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def roll(site: Site, finish: bool = False, limit: tuple[str, ...] = (),
         via: str | None = None, on_event: Callable[[HostEvent], None] = lambda _e: None,
         probe: Probe | None = None, verify_seconds: float = VERIFY_SECONDS
         ) -> RolloverResult:
    """Step one of the rollover (`finish` False), or step two; either begun or taken up where
    a run before stopped. A step that cannot be taken now is refused before anything
    changes."""
    if limit:
        raise RolloverRefused("pki rotate --ca: --limit is refused: a host left out would "
                              "refuse the new CA's certificates later; nothing was changed")
    pki = existing(site)
    state = generations.load(pki.directory)
    result = RolloverResult(site.name, finish, generations.describe(state), state,
                            reloads=trust_steps(site))
    check_tags(trust_tags())  # before anything changes
    asked = probe or transport_probe(for_site(site, via))
    run = _Run(site, pki, result, via, on_event, asked, verify_seconds)
    with one_at_a_time(pki):
        result.state = generations.load(pki.directory)  # as the run before us left it
        result.stood = generations.describe(result.state)
        if finish:
            run.finish()
        else:
            run.step_one()
    if result.status is not None:  # asked before the last step was recorded
        result.status.rollover = result.state
    return result


@dataclass
class _Run:
    site: Site
    pki: SitePki
    result: RolloverResult
    via: str | None
    on_event: Callable[[HostEvent], None]
    probe: Probe
    verify_seconds: float

    @property
    def files(self) -> CaFiles:
        return CaFiles(self.pki)

    @property
    def state(self) -> Rollover:
        return self.result.state

    def _set(self, state: Rollover) -> None:
        generations.save(self.pki.directory, state)
        self.result.state = state

    def _audit(self, step: str, outcome: str, **args: object) -> None:
        audit.append(ACTION + (" --finish" if self.result.finish else ""),
                     {"site": self.site.name, "step": step, "phase": self.state.phase,
                      "generation": self.state.generation, **args}, outcome)

    def _refuse(self, error: OpsctlError) -> None:
        self._audit("refused", f"refused: {error}")
        raise error

    # step one ---------------------------------------------------------------------------

    def step_one(self) -> None:
        if self.state.phase in (OVERLAP, FINISHING):
            self._refuse(RolloverRefused(
                f"pki rotate --ca: {generations.describe(self.state)}; run "
                f"`{generations.next_command(self.state)}` (nothing was changed)"))
        if self.state.phase == IDLE:
            self._new_ca()
        steps = {TRUST_BOTH: self._trust_both, SWITCH: self._switch, REISSUE: self._reissue}
        while self.state.phase in steps and not self.result.problems:
            steps[self.state.phase]()

    def _new_ca(self) -> None:
        """B beside A. Made again if a run stopped before recording it: no host saw it."""
        generation = self.state.generation + 1
        make_ca(self.files.next("key"), self.files.next("crt"),
                ca_subject(self.site.name, generation))
        self._set(self.state.at(
            TRUST_BOTH, new=generation, started=generations.now(),
            old_fingerprint=from_pem_file(self.pki.ca_cert).fingerprint,
            new_fingerprint=from_pem_file(self.files.next("crt")).fingerprint))
        self.result.steps.append(Done(f"CA {generation} made", "ok"))
        new_ca = from_pem_file(self.files.next("crt"))
        self._audit("new CA", "ok", subject=common_name(new_ca.subject))

    def _trust_both(self) -> None:
        old, new = self.pki.ca_cert, self.files.next("crt")
        write_trust(self.pki, [(self.state.generation, old.read_text(encoding="ascii")),
                               (self.state.new or 0, new.read_text(encoding="ascii"))])
        if self._apply_trust(f"every host trusts CA {self.state.generation} and "
                             f"CA {self.state.new}"):
            self._set(self.state.at(SWITCH))

    def _switch(self) -> None:
        """Issuing to B; A kept as ca-previous.*. Each move is a rename, the certificate
        last, so that a run stopped between two is finished by the next."""
        files = self.files
        if files.next("key").exists() and files.next("crt").exists():
            self._keep_previous()
        for suffix, final in (("key", self.pki.ca_key), ("crt", self.pki.ca_cert)):
            if files.next(suffix).exists():
                os.replace(files.next(suffix), final)
        if from_pem_file(self.pki.ca_cert).fingerprint != self.state.new_fingerprint:
            raise OpsctlError(f"{self.pki.ca_cert}: not the CA this rollover made "
                              f"({self.state.new_fingerprint}); see {generations.STATE_FILE}")
        self._set(self.state.at(REISSUE, generation=self.state.new or 0))
        self.result.steps.append(Done(f"CA {self.state.generation} signs", "ok"))
        self._audit("switch", "ok")

    def _keep_previous(self) -> None:
        files = self.files
        previous = files.previous("crt")
        if previous.exists() and from_pem_file(previous).fingerprint == self.state.old_fingerprint \
                and files.previous("key").exists():
            return  # kept by a run that stopped after it
        if previous.exists():  # an earlier rollover's: out of the way, not deleted
            retired = files.retired
            retired.mkdir(mode=0o700, exist_ok=True)
            name = f"ca-{from_pem_file(previous).fingerprint[:16]}"
            for suffix in ("key", "crt"):
                if files.previous(suffix).exists():
                    os.replace(files.previous(suffix), retired / f"{name}.{suffix}")
        for suffix, current in (("key", self.pki.ca_key), ("crt", self.pki.ca_cert)):
            copy = files.previous(suffix).with_suffix(f".{suffix}.new")
            shutil.copy2(current, copy)
            os.replace(copy, files.previous(suffix))

    def _reissue(self) -> None:
        rotation = rotate(self.site, (), via=self.via, on_event=self.on_event,
                          probe=self.probe, verify_seconds=self.verify_seconds)
        self.result.status = rotation.status
        left = not_signed_by(rotation.status, from_pem_file(self.pki.ca_cert)) \
            if rotation.status else []
        problems = rotation.problems + left
        self.result.steps.append(Done(f"every host certificate reissued by CA "
                                      f"{self.state.generation}",
                                      "ok" if not problems else
                                      f"failed: {len(problems)} problems", rotation.run.id))
        if problems:
            self.result.problems = problems
            self._audit("reissue", f"failed: {len(problems)} problems", run=rotation.run.id)
            return
        self._set(self.state.at(OVERLAP))
        self._audit("reissue", "ok", run=rotation.run.id)

    # step two ---------------------------------------------------------------------------

    def finish(self) -> None:
        if self.state.phase == IDLE:
            self._refuse(RolloverRefused(
                f"pki rotate --ca --finish: {generations.describe(self.state)}: nothing to "
                "finish (nothing was changed)"))
        if self.state.phase not in (OVERLAP, FINISHING):
            self._refuse(RolloverRefused(
                f"pki rotate --ca --finish: refused: {generations.describe(self.state)}; run "
                f"`{generations.next_command(self.state)}` first (nothing was changed)"))
        if self.state.phase == OVERLAP:
            current = gather(self.site, sorted(self.site.hosts), self.probe)
            self.result.status = current
            left = not_signed_by(current, from_pem_file(self.pki.ca_cert))
            if left:
                shown = "; ".join(left[:3]) + (f"; {len(left) - 3} more" if len(left) > 3
                                               else "")
                self._refuse(NotAllOnNewCa(
                    f"pki rotate --ca --finish: refused: {len(left)} certificates or hosts "
                    f"not on CA {self.state.generation} ({shown}): `opsctl pki status` "
                    "shows them, `opsctl pki rotate` reissues; nothing was changed"))
            write_trust(self.pki, [(self.state.generation,
                                    self.pki.ca_cert.read_text(encoding="ascii"))])
            self._set(self.state.at(FINISHING))
        if self._apply_trust(f"every host trusts CA {self.state.generation} alone"):
            self._set(self.state.at(IDLE, new=None, old_fingerprint=None,
                                    new_fingerprint=None))

    # both -------------------------------------------------------------------------------

    def _apply_trust(self, goal: str) -> bool:
        """The bundle to every host, every consumer taking it up, then pki status until every
        host holds it. Records the step; False (with the problems) when it did not."""
        hosts = sorted(self.site.hosts)
        try:
            run = apply(self.site, ApplyRequest(playbook=PLAYBOOK, tags=trust_tags(),
                                                via=self.via), on_event=self.on_event)
        except OpsctlError as exc:
            self._audit("trust", f"not applied: {exc}", trusts=_bundle_names(self.pki))
            raise
        problems: list[str] = []
        if run.result != "ok":
            problems = [f"apply run {run.id}: {run.result} ({', '.join(run.failed_hosts)})"]
        else:
            self.result.status = verify(self.site, hosts, self.probe, self.verify_seconds,
                                        until=trust_settled)
            problems = trust_problems(self.result.status)
        outcome = "ok" if not problems else f"failed: {len(problems)} problems"
        self.result.steps.append(Done(goal, outcome, run.id))
        self._audit("trust", outcome, run=run.id, trusts=_bundle_names(self.pki))
        self.result.problems = problems
        return not problems


def _bundle_names(pki: SitePki) -> list[str]:
    return sorted(p.stem for p in pki.trust_dir.glob("*.crt"))
