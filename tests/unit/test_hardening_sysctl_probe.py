"""The hardening role's sysctl probe (tasks/detect.yml), run here against this machine's own
/proc/sys: it hands the apply only the parameters that differ, split into those the host may
set and those it may not, so that a no-change apply loops over nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

TASKS = Path(__file__).resolve().parents[2] / "roles" / "hardening" / "tasks" / "detect.yml"


def probe(wanted: dict) -> dict:
    [task] = [t for t in yaml.safe_load(TASKS.read_text())
              if t["name"] == "Find which kernel parameters this host may set"]
    script = task["ansible.builtin.command"]["argv"][2]
    done = subprocess.run([sys.executable, "-c", script, json.dumps(wanted)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_only_differing_parameters_are_handed_on_each_to_its_list() -> None:
    now = Path("/proc/sys/kernel/randomize_va_space").read_text().strip()
    other = "1" if now != "1" else "2"
    found = probe({"kernel.randomize_va_space": int(now), "net.ipv4.tcp_syncookies": 7,
                   "kernel.no_such_parameter": 1})

    assert set(found["state"]) == {"kernel.randomize_va_space", "net.ipv4.tcp_syncookies",
                                   "kernel.no_such_parameter"}
    assert found["state"]["kernel.randomize_va_space"]["value"] == now
    differing = {e["key"]: e for e in found["to_set"] + found["skipped"]}
    assert "kernel.randomize_va_space" not in differing  # as wanted: costs nothing
    assert differing["net.ipv4.tcp_syncookies"]["value"] == 7  # the wanted value, not the host's
    assert differing["net.ipv4.tcp_syncookies"]["now"] != "7"
    missing = differing["kernel.no_such_parameter"]
    assert missing in found["skipped"] and missing["reason"] == "not in this kernel"
    writable = os.access("/proc/sys/net/ipv4/tcp_syncookies", os.W_OK)
    assert (differing["net.ipv4.tcp_syncookies"] in found["to_set"]) is writable

    again = probe({"kernel.randomize_va_space": int(other)})
    [entry] = again["to_set"] + again["skipped"]
    assert (entry["key"], entry["value"], entry["now"]) == ("kernel.randomize_va_space",
                                                            int(other), now)
