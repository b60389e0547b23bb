"""Integrity and malware protection: AIDE (its database, what schedules its check, and the
status its findings reach the monitoring agent through) and ClamAV's signature age."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import time

from security.collector.base import conf_dir, days_since, lines, read_files, read_opt, run
from security.collector.files import _group, _user

AIDE_CONFIGS = ("/etc/aide/aide.conf", "/etc/aide.conf")
AIDE_DATABASES = ("/var/lib/aide/aide.db", "/var/lib/aide/aide.db.gz")
AIDE_TIMERS = ("dailyaidecheck.timer", "aidecheck.timer")
ENABLED_STATES = ("enabled", "enabled-runtime", "static", "alias")
CRON_DAEMONS = ("/usr/sbin/cron", "/usr/sbin/crond")
# The host's half of AIDE's alarm path (role monitor_agent): root's timer condenses the daily
# check into a status file the agent's group reads (monitor/aide_status.py). The collector runs
# alone on the host and cannot read the role's defaults: tests/unit/test_one_source.py ties
# these copies to monitor_agent_aide_status_dir, monitor_agent_user and the role's timer.
AIDE_STATUS_TIMER = "opsctl-aide-status.timer"
AIDE_STATUS_FILE = "/var/lib/opsctl-aide-status/status.json"
AGENT_GROUP = "opsctl-monitor"
CLAMAV_DB = "/var/lib/clamav"


# ---------------------------------------------------------------- aide

def aide_timer_enabled() -> bool:
    """A unit file on disk schedules nothing: the timer must be enabled (systemctl is-enabled).
    Asks for one timer after the other and stops at the first that is."""
    if not os.path.isdir("/run/systemd/system") or shutil.which("systemctl") is None:
        return False
    for timer in AIDE_TIMERS:
        rc, out, _ = run(["systemctl", "is-enabled", timer], timeout=5)
        if rc == 0 and out.strip() in ENABLED_STATES:
            return True
    return False


def gather_cron() -> dict:
    """Cron tables, and the executable scripts named for aide in cron.{hourly,daily,weekly}:
    only when a cron daemon is installed (without one they run nothing)."""
    if not any(os.path.exists(b) for b in CRON_DAEMONS):
        return {"tables": {}, "scripts": {}}
    tables = read_files(["/etc/crontab", *conf_dir("/etc/cron.d", ""),
                         *conf_dir("/var/spool/cron/crontabs", "")])
    scripts = read_files([path for period in ("hourly", "daily", "weekly")
                          for path in conf_dir(f"/etc/cron.{period}", "")
                          if "aide" in os.path.basename(path) and os.access(path, os.X_OK)])
    return {"tables": tables, "scripts": scripts}


def aide_cron_entries(cron: dict, systemd_running: bool) -> list[str]:
    """Cron files that run aide. Debian's /etc/cron.daily/aide does nothing on a systemd host
    (it leaves the check to the timer), so it counts only where systemd is not running."""
    found = [path for path, text in cron["tables"].items()
             if any(re.search(r"(^|[\s/])aide(init)?(\s|$)|dailyaidecheck", line)
                    for line in lines(text or ""))]
    for path, text in cron["scripts"].items():
        if systemd_running and "/run/systemd/system" in (text or ""):
            continue
        found.append(path)
    return found


def unit_file_state(unit: str) -> str | None:
    """`systemctl is-enabled UNIT`'s word (enabled, disabled, masked, ...; not-found when it
    says nothing on stdout), None without a running systemd."""
    if not os.path.isdir("/run/systemd/system") or shutil.which("systemctl") is None:
        return None
    _rc, out, _ = run(["systemctl", "is-enabled", unit], timeout=5)
    return out.strip().splitlines()[0] if out.strip() else "not-found"


def _stat(path: str) -> dict | str | None:
    """Mode bits, owner and group names; None when absent, the error's text when unreadable."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
    return {"mode": stat.S_IMODE(st.st_mode), "owner": _user(st.st_uid),
            "group": _group(st.st_gid)}


def gather_aide_status() -> dict:
    """The status timer's state, the status file's and its directory's stat, and its text."""
    return {
        "timer_state": unit_file_state(AIDE_STATUS_TIMER),
        "file": _stat(AIDE_STATUS_FILE),
        "directory": _stat(os.path.dirname(AIDE_STATUS_FILE)),
        "text": read_opt(AIDE_STATUS_FILE),
    }


def gather_aide() -> dict:
    conf = next((p for p in AIDE_CONFIGS if os.path.exists(p)), None)
    db = next((p for p in AIDE_DATABASES if os.path.exists(p)), None)
    return {
        "config": conf,
        "database": db,
        "database_mtime": os.stat(db).st_mtime if db else None,
        "now": time.time(),
        "timer_enabled": aide_timer_enabled(),
        "cron": gather_cron(),
        "systemd_running": os.path.isdir("/run/systemd/system"),
        "status": gather_aide_status(),
    }


def _grants(st: dict, group: str, group_bit: int, other_bit: int) -> bool:
    return bool(st["mode"] & other_bit or (st["group"] == group and st["mode"] & group_bit))


def _access(st: dict) -> str:
    return f"{st['owner']}:{st['group']} {st['mode']:04o}"


def agent_may_read(file: dict, directory: dict, group: str = AGENT_GROUP) -> bool:
    """The agent's group reads the status now (the file readable, its directory searchable)
    and after the timer's next write: the file is replaced by a new one, which takes the
    directory's group only when the directory is setgid and that group is the agent's."""
    return (_grants(file, group, stat.S_IRGRP, stat.S_IROTH)
            and _grants(directory, group, stat.S_IXGRP, stat.S_IXOTH)
            and directory["group"] == group and bool(directory["mode"] & stat.S_ISGID))


def _written(text: str | None) -> float | None:
    """The status's own time (`written`, what the agent exports and the stale alert reads)."""
    try:
        written = json.loads(text or "")["written"]
    except (ValueError, KeyError, TypeError):
        return None
    return float(written) if isinstance(written, int | float) else None


def parse_aide_status(read_data: dict, now: float) -> dict:
    """What the check of the alarm path's host half reads: the timer's state, the status's age
    in seconds (None: absent or unreadable, `status_problem` says which), the file's and its
    directory's owner, group and mode, and whether the agent's group may read it."""
    file, directory = read_data["file"], read_data["directory"]
    problem = None
    age = None
    if isinstance(file, str):
        problem = f"{AIDE_STATUS_FILE}: {file}"
    elif file is None:
        problem = f"{AIDE_STATUS_FILE}: absent"
    else:
        written = _written(read_data["text"])
        if written is None:
            problem = f"{AIDE_STATUS_FILE}: no 'written' time in it (not the timer's JSON)"
        else:
            age = int(now - written)
    stats = isinstance(file, dict) and isinstance(directory, dict)
    access = None
    if stats:
        access = f"{_access(file)}, its directory {_access(directory)}"
    return {"status_timer": read_data["timer_state"],
            "status_file": AIDE_STATUS_FILE if isinstance(file, dict) else None,
            "status_age_seconds": age, "status_problem": problem, "status_access": access,
            "status_agent_readable": stats and agent_may_read(file, directory)}


def parse_aide(read_data: dict) -> dict:
    db = read_data["database"]
    age = int((read_data["now"] - read_data["database_mtime"]) // 86400) if db else None
    return {"config": read_data["config"], "database": db, "database_age_days": age,
            "timer_enabled": read_data["timer_enabled"],
            "cron_entries": aide_cron_entries(read_data["cron"], read_data["systemd_running"]),
            **parse_aide_status(read_data["status"], read_data["now"])}


def fact_aide() -> dict:
    return parse_aide(gather_aide())


# ---------------------------------------------------------------- clamav

def gather_clamav() -> dict:
    """The mtimes of ClamAV's signature databases (as many as could be read) and the time now."""
    mtimes = []
    try:
        for name in os.listdir(CLAMAV_DB):
            if name.endswith((".cvd", ".cld")):
                mtimes.append(os.stat(os.path.join(CLAMAV_DB, name)).st_mtime)
    except OSError:
        pass
    return {"mtimes": mtimes, "now": time.time()}


def parse_clamav(read_data: dict) -> dict:
    newest = max(read_data["mtimes"], default=None)
    return {"signatures_age_days": days_since(newest, read_data["now"])}


def fact_clamav() -> dict:
    return parse_clamav(gather_clamav())
