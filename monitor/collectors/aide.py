"""AIDE's last daily check, from the status file a root timer writes (monitor/aide_status.py):
the agent reads neither AIDE's log nor its baseline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily, Metric

CHANGES = ("added", "removed", "changed")


class AideCollector:
    def __init__(self, path: Path | None) -> None:
        self.path = path

    def collect(self) -> Iterator[Metric]:
        if self.path is None or not self.path.exists():
            return  # no AIDE on this host (the timer's condition), or not written yet
        readable = GaugeMetricFamily("opsctl_aide_status_readable",
                                     "Whether the AIDE status file could be read.")
        try:
            data = json.loads(self.path.read_text())
            written = float(data["written"])
            baseline = data.get("baseline")
            check = data.get("check")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            readable.add_metric([], 0)
            yield readable
            return
        readable.add_metric([], 1)
        yield readable
        yield _gauge("opsctl_aide_status_timestamp_seconds",
                     "When the AIDE status was last written.", written)
        if isinstance(baseline, int | float):
            yield _gauge("opsctl_aide_baseline_timestamp_seconds",
                         "When the AIDE baseline (the database checks compare with) was made.",
                         float(baseline))
        if not isinstance(check, dict) or not isinstance(check.get("finished"), int | float):
            return
        yield _gauge("opsctl_aide_last_check_timestamp_seconds",
                     "When AIDE's last daily check finished.", float(check["finished"]))
        code = check.get("exit_code")
        # AIDE's own codes: 0 nothing found, 1-7 added/removed/changed bits, 14 and up errors;
        # 255 when the check stopped before AIDE returned.
        yield _gauge("opsctl_aide_last_check_exit_code", "AIDE's exit code in the last daily "
                     "check (255: it stopped before AIDE returned).",
                     float(code) if isinstance(code, int) else 255.0)
        entries = GaugeMetricFamily(
            "opsctl_aide_last_check_entries",
            "Files and directories the last daily check found added, removed or changed "
            "since the baseline.", labels=["change"])
        for change in CHANGES:
            value = check.get(change, 0)
            entries.add_metric([change], float(value) if isinstance(value, int) else 0.0)
        yield entries


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation)
    family.add_metric([], value)
    return family
