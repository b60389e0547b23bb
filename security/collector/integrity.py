"""Integrity and malware protection: AIDE (its database, and what schedules its check) and
ClamAV's signature age."""

from __future__ import annotations

import os
import re
import shutil
import time

from security.collector.base import conf_dir, days_since, lines, read_files, run

AIDE_CONFIGS = ("/etc/aide/aide.conf", "/etc/aide.conf")
AIDE_DATABASES = ("/var/lib/aide/aide.db", "/var/lib/aide/aide.db.gz")
AIDE_TIMERS = ("dailyaidecheck.timer", "aidecheck.timer")
ENABLED_STATES = ("enabled", "enabled-runtime", "static", "alias")
CRON_DAEMONS = ("/usr/sbin/cron", "/usr/sbin/crond")
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
    }


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


def parse_aide(read_data: dict) -> dict:
    db = read_data["database"]
    age = int((read_data["now"] - read_data["database_mtime"]) // 86400) if db else None
    return {"config": read_data["config"], "database": db, "database_age_days": age,
            "timer_enabled": read_data["timer_enabled"],
            "cron_entries": aide_cron_entries(read_data["cron"], read_data["systemd_running"])}


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
