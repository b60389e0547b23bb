"""`opsctl aide report`: per host, what AIDE's last daily check said, read from its log.

Gathering apart from judging: `stat_argv` and `read_argv` are what runs on a host (through the
site's transport, as root: the log is `_aide`'s and adm's, the baseline's directory `_aide`'s
alone); `judge` is pure (their output in, a HostReport out) and tested with the recorded logs
in tests/unit/facts/aide/; `read_host` and `report` are the edge.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from monitor import aide_status
from opsctl.site.model import Site
from opsctl.transport import HostError, HostUnreachable, Transport, for_site

LOG = str(aide_status.LOG)  # Debian's dailyaidecheck writes its report here
BASELINE = str(aide_status.BASELINE)  # the database the daily check compares with
AIDE = "/usr/bin/aide"
READ_TIMEOUT = 60.0
CHANGES = aide_status.CHANGES

# A host's state: clean, entries (the check found some), failed (the check or AIDE erred, or
# the log could not be read), unreachable, no check (AIDE is there, no daily check has written
# its log yet), no aide (AIDE is not installed). The first and the last two are not findings.
NOT_FINDINGS = ("clean", "no check", "no aide")


@dataclass(frozen=True)
class Entry:
    """One file or directory AIDE listed: how it changed and AIDE's summary string (which
    attributes: C the checksums, m the mtime, p the permissions, ...)."""

    path: str
    change: str  # added | removed | changed
    summary: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "change": self.change, "summary": self.summary}


def entries_of(text: str) -> list[Entry]:
    return [Entry(e["path"], e["change"], e["summary"]) for e in aide_status.parse_entries(text)]


@dataclass
class HostReport:
    host: str
    state: str
    reason: str = ""  # why it is failed, unreachable or without a check; "" otherwise
    checked: float | None = None  # when the daily check finished (its log's time on the host)
    started: str | None = None  # AIDE's own start timestamp in that check
    baseline: float | None = None  # when the baseline (aide.db) was written
    exit_code: int | None = None  # AIDE's, as the daily check logged it
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHANGES, 0))
    entries: list[Entry] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.state in NOT_FINDINGS

    @property
    def unlisted(self) -> int:
        """Entries AIDE counted that the log does not list (a report cut short)."""
        return max(0, sum(self.counts.values()) - len(self.entries))

    def as_dict(self) -> dict[str, Any]:
        return {"host": self.host, "state": self.state, "ok": self.ok, "reason": self.reason,
                "checked": _iso(self.checked), "started": self.started,
                "baseline": _iso(self.baseline), "exit_code": self.exit_code,
                **self.counts, "unlisted": self.unlisted,
                "entries": [e.as_dict() for e in self.entries]}


@dataclass
class AideReport:
    site: str
    hosts: list[HostReport]

    @property
    def ok(self) -> bool:
        """No host with entries, none failed or unreachable: exit 0."""
        return all(h.ok for h in self.hosts)

    def as_dict(self) -> dict[str, Any]:
        return {"site": self.site, "ok": self.ok, "hosts": [h.as_dict() for h in self.hosts]}


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")


# --- on the host ----------------------------------------------------------------------------

def stat_argv() -> list[str]:
    """The times of the baseline, the log and AIDE itself: a missing one is left out (stat
    says so on stderr and exits 1, having printed the others)."""
    return ["stat", "--format=%Y %n", "--", BASELINE, LOG, AIDE]


def read_argv() -> list[str]:
    return ["cat", "--", LOG]


def parse_stat(stdout: str) -> dict[str, float]:
    """stat's lines ("1765000000 /var/lib/aide/aide.db") as {path: mtime}."""
    times: dict[str, float] = {}
    for line in stdout.splitlines():
        moment, _, path = line.partition(" ")
        try:
            times[path] = float(moment)
        except ValueError:
            continue
    return times


# --- judging (pure) -------------------------------------------------------------------------

def judge(host: str, times: dict[str, float], log: str | None) -> HostReport:
    """A host's report from its files' times and the daily check's log (None: no log)."""
    found = HostReport(host, "clean", baseline=times.get(BASELINE), checked=times.get(LOG))
    if AIDE not in times:
        found.state, found.reason = "no aide", f"AIDE is not installed ({AIDE})"
        return found
    if log is None:
        found.state = "no check"
        found.reason = ("no daily check yet" if BASELINE in times else
                        f"no baseline ({BASELINE}) and no daily check ({LOG})")
        return found
    outcome = aide_status.parse_report(log)
    found.exit_code = outcome["exit_code"]
    found.counts = {kind: outcome[kind] for kind in CHANGES}
    found.entries = entries_of(log)
    found.started = aide_status.parse_start(log)
    code = found.exit_code
    if code is None:
        found.state = "failed"
        found.reason = "the daily check stopped before AIDE returned an exit code"
    elif not 0 <= code <= 7:
        error = aide_status.parse_error(log)
        found.state = "failed"
        found.reason = f"AIDE exited {code}" + (f": {error}" if error else "")
    elif any(found.counts.values()):
        found.state = "entries"
    return found


# --- the edge -------------------------------------------------------------------------------

def read_host(t: Transport, host: str) -> HostReport:
    """One host's last daily check, read over the transport; a host that cannot be read is
    a report saying why (the others go on)."""
    try:
        times = parse_stat(t.run(host, stat_argv(), timeout=READ_TIMEOUT).stdout)
        log = None
        if LOG in times:
            done = t.run(host, read_argv(), timeout=READ_TIMEOUT)
            if done.rc != 0:
                return HostReport(host, "failed", f"cat {LOG}: {done.message}",
                                  checked=times.get(LOG), baseline=times.get(BASELINE))
            log = done.stdout
    except HostUnreachable as exc:
        return HostReport(host, "unreachable", str(exc))
    except HostError as exc:
        return HostReport(host, "failed", str(exc))
    return judge(host, times, log)


def report(site: Site, limit: tuple[str, ...] | list[str] = (),
           transport: Transport | None = None) -> AideReport:
    """The last daily check of every host (or of the hosts and groups `limit` names: an
    unknown one is InvalidInput before any host is asked), read in parallel."""
    hosts = site.select_hosts(limit)
    t = transport or for_site(site)
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(hosts)))) as pool:
        found = list(pool.map(lambda h: read_host(t, h), hosts))
    return AideReport(site.name, found)
