"""systemd on the host: the watched units' states, every failed unit, the manager's own state,
and the units left off by design with the reason their role recorded.

Two bounded `systemctl` calls per scrape:
- `systemctl show --state=failed -p Id,Names,ActiveState,LoadState -- WATCHED… '*'`: the watch
  list by name (a named unit is shown whatever its state) and the glob expanded to the loaded
  units in state `failed`, which is what `systemctl --failed` lists;
- `systemctl is-system-running`: running, degraded (some unit failed), starting, ….
Units disabled by design are files in a directory the roles write (DISABLED_DIR): the file's
name is the unit's, its first line the reason.

Gathering is apart from meaning: `parse_show`, `select_units`, `parse_system_state` and
`parse_disabled` are pure and tested with recorded output.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily, Metric

STATES = ("active", "activating", "deactivating", "inactive", "failed")
# `systemctl is-system-running`'s answers (systemctl(1)).
SYSTEM_STATES = ("initializing", "starting", "running", "degraded", "maintenance", "stopping",
                 "offline", "unknown")
# Where roles record a unit they leave off on purpose (the hardening role: auditd where the
# kernel refuses audit). The hardening and monitor_agent roles' defaults name the same path;
# tests/unit/test_one_source.py ties them to this copy (this package cannot read them).
DISABLED_DIR = Path("/etc/opsctl/disabled-units.d")
TIMEOUT_SECONDS = 5.0
REASON_MAX = 200
UNIT_NAME = re.compile(r"[A-Za-z0-9:_.@\\-]+\.(service|socket|device|mount|automount|swap|"
                       r"target|path|timer|slice|scope)")


class SystemctlError(Exception):
    """systemctl did not answer (not installed, no systemd, timed out, refused)."""


def parse_show(output: str) -> dict[str, str]:
    """`systemctl show -p Id,ActiveState,LoadState UNIT…` → {unit: active state}.

    Units are separated by blank lines; a unit that is not installed reports
    LoadState=not-found and counts as absent (no series), not as failed.
    """
    return {unit: state for unit, (state, _names) in _blocks(output).items()}


def _blocks(output: str) -> dict[str, tuple[str, frozenset[str]]]:
    units: dict[str, tuple[str, frozenset[str]]] = {}
    for block in output.strip().split("\n\n"):
        fields = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if fields.get("Id") and fields.get("LoadState") != "not-found":
            names = frozenset(fields.get("Names", "").split()) | {fields["Id"]}
            units[fields["Id"]] = (fields.get("ActiveState", "unknown"), names)
    return units


def select_units(output: str, watched: Iterable[str]) -> dict[str, str]:
    """The watched units in whatever state, every other unit only when it failed.

    A watched unit may be named by an alias (`sshd.service` for `ssh.service`): the unit's
    `Names` say which names it answers to. A failed watched unit appears twice in the output
    (by name and through the glob) and once here.
    """
    wanted = set(watched)
    return {unit: state for unit, (state, names) in _blocks(output).items()
            if state == "failed" or names & wanted}


def parse_system_state(output: str) -> str:
    """`systemctl is-system-running` → its one word; SystemctlError for anything else."""
    state = output.strip().split("\n", 1)[0].strip()
    if state not in SYSTEM_STATES:
        raise SystemctlError(f"systemctl is-system-running said {state!r}")
    return state


def parse_disabled(entries: dict[str, str]) -> dict[str, str]:
    """{file name: content} of the disabled-units directory → {unit: reason}.

    Files not named like a unit (`README`, `auditd.service.dpkg-old`, hidden files) are not
    entries. The reason is the first non-blank line, cut to REASON_MAX characters (it becomes
    a label value); an empty file still records the unit, with the reason "(none recorded)".
    """
    out: dict[str, str] = {}
    for name, text in entries.items():
        if not UNIT_NAME.fullmatch(name):
            continue
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        reason = lines[0] if lines else "(none recorded)"
        out[name] = reason if len(reason) <= REASON_MAX else reason[:REASON_MAX - 1] + "…"
    return out


# ---------------------------------------------------------------- gathering (the edge)

def show_command(units: Iterable[str]) -> list[str]:
    return ["systemctl", "show", "--state=failed", "--property=Id,Names,ActiveState,LoadState",
            "--", *units, "*"]


def _systemctl(argv: list[str], ok_codes: tuple[int, ...]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_SECONDS,
                              check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        raise SystemctlError(f"{' '.join(argv[:2])}: {exc}") from None
    if done.returncode not in ok_codes:
        raise SystemctlError(f"{' '.join(argv[:2])}: exit {done.returncode}: "
                             f"{done.stderr.strip()[:200]}")
    return done.stdout


def systemctl_show(units: tuple[str, ...]) -> str:
    return _systemctl(show_command(units), ok_codes=(0,))


def systemctl_is_system_running() -> str:
    # exit 0 only for `running`; the word on stdout is the answer either way
    return _systemctl(["systemctl", "is-system-running"], ok_codes=(0, 1))


def read_disabled_dir(directory: Path) -> dict[str, str]:
    """The directory's regular files and their text; {} when it does not exist."""
    try:
        paths = sorted(p for p in directory.iterdir() if p.is_file())
    except FileNotFoundError:
        return {}
    entries = {}
    for path in paths:
        entries[path.name] = path.read_text(encoding="utf-8", errors="replace")
    return entries


class SystemdCollector:
    def __init__(self, units: tuple[str, ...], disabled_dir: Path | None = DISABLED_DIR,
                 show: Callable[[tuple[str, ...]], str] = systemctl_show,
                 system_state: Callable[[], str] = systemctl_is_system_running,
                 read_disabled: Callable[[Path], dict[str, str]] = read_disabled_dir) -> None:
        self.units = units
        self.disabled_dir = disabled_dir
        self.show = show
        self.system_state = system_state
        self.read_disabled = read_disabled

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("opsctl_systemd_unit_state",
                                   "1 for the unit's current active state: the watched units "
                                   "and every failed unit.", labels=["unit", "state"])
        system = GaugeMetricFamily("opsctl_systemd_system_state",
                                   "1 for the manager's state (systemctl is-system-running).",
                                   labels=["state"])
        disabled = GaugeMetricFamily("opsctl_systemd_unit_disabled_by_design",
                                     "A unit its role leaves off on purpose, with the reason.",
                                     labels=["unit", "reason"])
        ok = GaugeMetricFamily("opsctl_systemd_scrape_success",
                               "Whether systemctl answered and the disabled-units directory "
                               "was readable.")
        success = 1.0
        try:
            states = select_units(self.show(self.units), self.units)
        except SystemctlError:
            states, success = {}, 0.0
        for unit, current in sorted(states.items()):
            for state in STATES:
                family.add_metric([unit, state], 1.0 if current == state else 0.0)
        try:
            current_system = parse_system_state(self.system_state())
        except SystemctlError:
            success = 0.0
        else:
            for state in SYSTEM_STATES:
                system.add_metric([state], 1.0 if current_system == state else 0.0)
        try:
            reasons = parse_disabled(self.read_disabled(self.disabled_dir)
                                     if self.disabled_dir else {})
        except OSError:
            reasons, success = {}, 0.0
        for unit, reason in sorted(reasons.items()):
            disabled.add_metric([unit, reason], 1.0)
        ok.add_metric([], success)
        yield family
        yield system
        yield disabled
        yield ok
