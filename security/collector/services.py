"""What runs: the systemd units the catalog names (with the ones roles leave off on purpose,
and why), and the names of running processes."""

from __future__ import annotations

import os
import re

from security.collector.base import FactError, read, read_opt, run

# Units whose state the catalog checks.
UNITS = (
    "auditd.service", "rsyslog.service", "ssh.service", "nftables.service",
    "telnet.socket", "inetutils-inetd.service", "openbsd-inetd.service", "rsh.socket",
    "avahi-daemon.service", "cups.service", "rpcbind.service", "nfs-server.service",
    "smbd.service", "vsftpd.service", "snmpd.service", "apache2.service", "bluetooth.service",
    "clamav-daemon.service", "clamav-freshclam.service", "chrony.service",
    "systemd-timesyncd.service", "aidecheck.timer", "dailyaidecheck.timer", "tmp.mount",
)
UNIT_PROPERTIES = "Id,LoadState,ActiveState,UnitFileState,RefuseManualStop"
# Units a role leaves off on purpose (auditd where the kernel refuses audit): one file per unit,
# named as the unit, whose first line is the reason. The hardening role writes it
# (hardening_disabled_units_dir); the monitoring agent reads the same directory
# (tests/unit/test_one_source.py ties the copies).
DISABLED_UNITS_DIR = "/etc/opsctl/disabled-units.d"
DISABLED_REASON_MAX = 200
UNIT_NAME = re.compile(r"[A-Za-z0-9:_.@\\-]+\.(service|socket|device|mount|automount|swap|"
                       r"target|path|timer|slice|scope)")


# ---------------------------------------------------------------- units

def read_disabled_units_dir(directory: str = DISABLED_UNITS_DIR) -> dict[str, str]:
    """{file name: content} of the disabled-units directory; absent: {}."""
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise FactError(f"{directory}: {exc.strerror}") from None
    entries = {}
    for name in names:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            entries[name] = read(path)
    return entries


def parse_disabled_units(entries: dict[str, str]) -> dict[str, str]:
    """{file name: content} of DISABLED_UNITS_DIR → {unit: reason}, as the agent reads it: files
    not named like a unit are not entries; the reason is the first non-blank line, cut."""
    out: dict[str, str] = {}
    for name, text in entries.items():
        if not UNIT_NAME.fullmatch(name):
            continue
        found = [line.strip() for line in text.splitlines() if line.strip()]
        reason = found[0] if found else "(none recorded)"
        out[name] = reason if len(reason) <= DISABLED_REASON_MAX else \
            reason[:DISABLED_REASON_MAX - 1] + "…"
    return out


def gather_services() -> dict:
    if not os.path.isdir("/run/systemd/system"):
        raise FactError("systemd is not running on this host (PID 1 is "
                        f"{(read_opt('/proc/1/comm') or '?').strip()}), unit states unknown")
    rc, out, err = run(["systemctl", "show", "--no-pager", "-p", UNIT_PROPERTIES, *UNITS])
    if rc != 0:
        raise FactError(f"systemctl show failed: {err.strip()}")
    return {"show": out, "disabled": read_disabled_units_dir()}


def parse_services(show: str, disabled: dict[str, str]) -> dict:
    """`systemctl show -p Id,LoadState,ActiveState,UnitFileState,RefuseManualStop UNIT…` and
    the units left off by design → per unit its state and, when recorded, why it is off."""
    units: dict[str, dict] = {}
    for block in show.strip().split("\n\n"):
        kv = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if "Id" in kv:
            units[kv["Id"]] = {
                "present": kv.get("LoadState") == "loaded",
                "active": kv.get("ActiveState"),
                "enabled": kv.get("UnitFileState") or None,
                "refuse_manual_stop": kv.get("RefuseManualStop") == "yes",
                "disabled_by_design": disabled.get(kv["Id"]),
            }
    return units


def fact_services() -> dict:
    read_data = gather_services()
    return parse_services(read_data["show"], parse_disabled_units(read_data["disabled"]))


# ---------------------------------------------------------------- processes

def gather_processes() -> list[str]:
    """The command name of every process that is still there when its turn comes."""
    names = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/comm") as fh:
                    names.append(fh.read())
            except OSError:
                continue
    return names


def parse_processes(names: list[str]) -> dict:
    return {"names": sorted({name.strip() for name in names})}


def fact_processes() -> dict:
    return parse_processes(gather_processes())
