"""`opsctl aide accept`: a reviewed host's files as they are now become its AIDE baseline, on
the record.

Per host, one at a time, through the site's transport (as root):
1. `aide --config /etc/aide/aide.conf --update`: one scan that reports what differs from the
   baseline and writes the database of what is there now (Debian's aide.conf: database_out,
   aide.db.new). Its exit code is AIDE's bitmask (1 added, 2 removed, 4 changed; 0 nothing
   differs); anything else (14 and up: AIDE's errors; 124: the scan ran out of time) is a
   failure and nothing is installed. Its own report is what is accepted: the entries it lists
   must add up to its summary's counts, else nothing is installed either (the audit record
   would not say what was folded in).
2. The SHA-256 of the old and the new database; aide.db.new takes aide.db's owner and mode (the
   daily check reads it as `_aide`) and is renamed over it.
3. The daily check again (`reset-failed` first: its unit has a start limit), then the AIDE
   status service, so that the metrics and OpsctlFileIntegrityChanged clear now; its log is
   read back as `opsctl aide report` reads it, and it must be newer than the new baseline and
   clean.
4. One audit record `aide-accept` per host, failed or not: the reason, the update's exit code,
   its counts and entries, both databases' SHA-256, the new check's result.
A host that fails stops nothing else; the caller exits 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from monitor import aide_status
from opsctl import audit
from opsctl.aide.report import BASELINE, CHANGES, Entry, HostReport, entries_of, read_host
from opsctl.errors import InvalidInput, Problem
from opsctl.roles import role_default
from opsctl.site.model import Site
from opsctl.transport import HostError, Transport, for_site

CONFIG = "/etc/aide/aide.conf"
NEW_BASELINE = f"{BASELINE}.new"  # Debian's aide.conf: database_out
DAILY_CHECK = "dailyaidecheck.service"
STATUS_SERVICE = "opsctl-aide-status.service"  # roles/monitor_agent: the agent's metrics
# A scan of the whole filesystem: as long as the first baseline may take (the hardening role).
SCAN_SECONDS = int(role_default("hardening", "hardening_aide_init_timeout"))
SSH_MARGIN = 60.0
SHORT = 60.0
AUDIT_ACTION = "aide-accept"

Progress = Callable[[str], None]


class AcceptFailed(HostError):
    """A step of the accept failed on a host; the other hosts go on."""


@dataclass
class AcceptResult:
    host: str
    step: str = "update"  # the step reached: update, install, check, done
    error: str = ""
    update_exit_code: int | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHANGES, 0))
    entries: list[Entry] = field(default_factory=list)
    installed: bool = False  # the new baseline is in place
    sha256: dict[str, str] = field(default_factory=dict)  # previous, new
    check: HostReport | None = None  # the daily check run after the install
    audit_seq: int | None = None

    @property
    def ok(self) -> bool:
        return self.step == "done" and not self.error

    def as_dict(self) -> dict[str, Any]:
        return {"host": self.host, "ok": self.ok, "step": self.step, "error": self.error,
                "update_exit_code": self.update_exit_code, "accepted": self.counts,
                "entries": [e.as_dict() for e in self.entries], "installed": self.installed,
                "baseline_sha256": self.sha256,
                "check": self.check.as_dict() if self.check else None,
                "audit_seq": self.audit_seq}


@dataclass
class AcceptRun:
    site: str
    reason: str
    hosts: list[AcceptResult]

    @property
    def ok(self) -> bool:
        return all(h.ok for h in self.hosts)

    def as_dict(self) -> dict[str, Any]:
        return {"site": self.site, "reason": self.reason, "ok": self.ok,
                "hosts": [h.as_dict() for h in self.hosts]}


# --- what runs on the host, in order --------------------------------------------------------

def update_argv(seconds: int = SCAN_SECONDS) -> list[str]:
    return ["timeout", str(seconds), "aide", "--config", CONFIG, "--update"]


def sha256_argv() -> list[str]:
    return ["sha256sum", "--", BASELINE, NEW_BASELINE]


def install_argvs() -> list[list[str]]:
    """aide.db.new with aide.db's owner and mode, renamed over it (one rename: the daily
    check never sees a half-written baseline)."""
    return [["chown", f"--reference={BASELINE}", "--", NEW_BASELINE],
            ["chmod", f"--reference={BASELINE}", "--", NEW_BASELINE],
            ["mv", "-f", "--", NEW_BASELINE, BASELINE]]


def check_argvs() -> list[list[str]]:
    """The daily check, then the status the agent exports (their start limits reset first:
    one daily check in two hours, three status runs in ten minutes)."""
    return [["systemctl", "reset-failed", DAILY_CHECK, STATUS_SERVICE],
            ["systemctl", "start", DAILY_CHECK],
            ["systemctl", "start", STATUS_SERVICE]]


# --- judging (pure) -------------------------------------------------------------------------

def judge_update(rc: int, stdout: str) -> tuple[dict[str, int], list[Entry]]:
    """What `aide --update` found (and wrote into aide.db.new): its counts and entries.
    AcceptFailed when it did not complete, or when its report does not list every entry it
    counted."""
    if not 0 <= rc <= 7:
        why = "the scan ran out of time" if rc == 124 else "AIDE's error"
        raise AcceptFailed(f"aide --update exited {rc} ({why}); nothing was installed")
    counts = aide_status.parse_counts(stdout, rc)
    entries = entries_of(stdout)
    listed = {kind: sum(1 for e in entries if e.change == kind) for kind in CHANGES}
    if listed != counts:
        raise AcceptFailed(
            f"aide --update counted {_counts(counts)} but listed {_counts(listed)}: its report "
            "does not say exactly what would be accepted (report_level at least list_entries "
            "in aide.conf); nothing was installed")
    return counts, entries


def parse_sha256(stdout: str) -> dict[str, str]:
    """sha256sum's lines for the old and the new baseline."""
    names = {BASELINE: "previous", NEW_BASELINE: "new"}
    found = {}
    for line in stdout.splitlines():
        digest, _, path = line.partition("  ")
        if path in names:
            found[names[path]] = digest
    return found


def judge_check(check: HostReport) -> str:
    """Why the daily check after the install does not show the host clean ("" when it does)."""
    if check.state != "clean":
        return f"the daily check after the install is {check.state}" + (
            f": {check.reason}" if check.reason else f" ({_counts(check.counts)})")
    if check.checked is None or check.baseline is None or check.checked < check.baseline:
        return "the daily check did not write a new log after the install"
    return ""


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts.get(kind, 0)} {kind}" for kind in CHANGES)


# --- the edge -------------------------------------------------------------------------------

def require(site: Site, hosts: list[str] | tuple[str, ...], reason: str) -> list[str]:
    """The hosts (each a host of the site, in the order given, once) and a reason that says
    something; InvalidInput before any host is reached."""
    if not reason.strip():
        raise InvalidInput([Problem("--reason", "", "say why these changes are accepted: the "
                                    "audit record keeps it with the entries")])
    if not hosts:
        raise InvalidInput([Problem("HOST", "", "name the reviewed hosts")])
    return list(dict.fromkeys(site.require_hosts(hosts, "HOST")))


def accept(site: Site, hosts: list[str] | tuple[str, ...], reason: str,
           transport: Transport | None = None,
           progress: Progress = lambda _m: None) -> AcceptRun:
    """Accept each reviewed host's current files as its AIDE baseline, one host at a time;
    every host is tried and recorded, failed or not."""
    names = require(site, hosts, reason)
    t = transport or for_site(site)
    run = AcceptRun(site.name, reason.strip(), [])
    for host in names:
        run.hosts.append(accept_host(site, t, host, run.reason, progress))
    return run


def accept_host(site: Site, t: Transport, host: str, reason: str,
                progress: Progress = lambda _m: None) -> AcceptResult:
    result = AcceptResult(host)
    try:
        _update(t, result, progress)
        _install(t, result, progress)
        _check(t, result, progress)
        result.step = "done"
    except HostError as exc:
        result.error = str(exc)
    finally:
        if result.step != "done" and not result.error:
            result.error = f"interrupted during {result.step}"  # a bug: its traceback follows
        result.audit_seq = _record(site, reason, result)["seq"]
    return result


def _run(t: Transport, host: str, argv: list[str], timeout: float) -> str:
    done = t.run(host, argv, timeout=timeout)
    if done.rc != 0:
        raise AcceptFailed(f"{host}: {' '.join(argv[:2])} failed: {done.message}")
    return done.stdout


def _update(t: Transport, result: AcceptResult, progress: Progress) -> None:
    host = result.host
    progress(f"{host}: aide --update (a scan of the whole filesystem)")
    done = t.run(host, update_argv(), timeout=SCAN_SECONDS + SSH_MARGIN)
    result.update_exit_code = done.rc
    try:
        result.counts, result.entries = judge_update(done.rc, done.stdout)
    except AcceptFailed as exc:
        detail = done.stderr.strip().splitlines()[-1:] if done.rc > 7 else []
        raise AcceptFailed(f"{host}: {exc}" + (f" [{detail[0]}]" if detail else "")) from None
    progress(f"{host}: {_counts(result.counts)}")


def _install(t: Transport, result: AcceptResult, progress: Progress) -> None:
    result.step = "install"
    host = result.host
    result.sha256 = parse_sha256(_run(t, host, sha256_argv(), SHORT))
    if "new" not in result.sha256:
        raise AcceptFailed(f"{host}: aide --update wrote no {NEW_BASELINE}; nothing was "
                           "installed")
    for argv in install_argvs():
        _run(t, host, argv, SHORT)
    result.installed = True
    progress(f"{host}: new baseline installed (sha256 {result.sha256['new'][:16]})")


def _check(t: Transport, result: AcceptResult, progress: Progress) -> None:
    result.step = "check"
    host = result.host
    progress(f"{host}: the daily check again")
    reset, start, status = check_argvs()
    t.run(host, reset, timeout=SHORT)  # its status does not matter: nothing to reset is fine
    _run(t, host, start, SCAN_SECONDS + SSH_MARGIN)
    _run(t, host, status, SHORT)
    result.check = read_host(t, host)
    why = judge_check(result.check)
    if why:
        raise AcceptFailed(f"{host}: {why}")
    progress(f"{host}: the new daily check is clean")


def _record(site: Site, reason: str, result: AcceptResult) -> dict[str, Any]:
    check = result.check
    args = {"site": site.name, "host": result.host, "reason": reason,
            "update_exit_code": result.update_exit_code, "accepted": result.counts,
            "entries": [e.as_dict() for e in result.entries],
            "installed": result.installed, "baseline_sha256": result.sha256,
            "check": {"state": check.state, "exit_code": check.exit_code, **check.counts}
            if check else None}
    if result.ok:
        outcome = f"ok: accepted {_counts(result.counts)}; the new daily check is clean"
    elif result.installed:
        outcome = f"failed after the new baseline was installed: {result.error}"
    else:
        outcome = f"failed, nothing installed: {result.error}"
    return audit.append(AUDIT_ACTION, args, outcome)
