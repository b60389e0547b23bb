"""States of the platform's systemd units, from one `systemctl show` per scrape."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

STATES = ("active", "activating", "deactivating", "inactive", "failed")


def parse_show(output: str) -> dict[str, str]:
    """`systemctl show -p Id,ActiveState,LoadState UNIT…` → {unit: active state}.

    Units are separated by blank lines; a unit that is not installed reports
    LoadState=not-found and counts as absent (no series), not as failed.
    """
    states: dict[str, str] = {}
    for block in output.strip().split("\n\n"):
        fields = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if fields.get("Id") and fields.get("LoadState") != "not-found":
            states[fields["Id"]] = fields.get("ActiveState", "unknown")
    return states


def systemctl_show(units: tuple[str, ...]) -> str:
    done = subprocess.run(["systemctl", "show", "--property=Id,ActiveState,LoadState",
                           "--", *units], capture_output=True, text=True, timeout=5,
                          check=False)
    return done.stdout


class SystemdCollector:
    def __init__(self, units: tuple[str, ...],
                 show: Callable[[tuple[str, ...]], str] = systemctl_show) -> None:
        self.units = units
        self.show = show

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("opsctl_systemd_unit_state",
                                   "1 for the unit's current active state.",
                                   labels=["unit", "state"])
        ok = GaugeMetricFamily("opsctl_systemd_scrape_success",
                               "Whether systemctl answered.")
        if not self.units:
            return
        try:
            states = parse_show(self.show(self.units))
            ok.add_metric([], 1)
        except (OSError, subprocess.SubprocessError):
            states = {}
            ok.add_metric([], 0)
        for unit, current in sorted(states.items()):
            for state in STATES:
                family.add_metric([unit, state], 1.0 if current == state else 0.0)
        yield family
        yield ok
