"""The last compliance scan's outcome, read from the file the scheduled scan writes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily, Metric

RESULTS = ("pass", "fail", "not_applicable", "error", "exception")


class ComplianceCollector:
    """Expects {"finished": unix_time, "counts": {"pass": n, "fail": n, ...}} and, from
    scans since password expiry was reported, {"password_expiry": {user: unix_time}}."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def collect(self) -> Iterator[Metric]:
        if self.path is None:
            return
        try:
            data = json.loads(self.path.read_text())
            counts = data["counts"]
            finished = float(data["finished"])
        except (OSError, ValueError, KeyError, TypeError):
            return
        checks = GaugeMetricFamily("opsctl_compliance_checks",
                                   "Checks of the last scan by result.", labels=["result"])
        for result in RESULTS:
            checks.add_metric([result], float(counts.get(result, 0)))
        yield checks
        passed, failed = float(counts.get("pass", 0)), float(counts.get("fail", 0))
        ratio = GaugeMetricFamily("opsctl_compliance_pass_ratio",
                                  "Passing share of the applicable, evaluated checks.")
        ratio.add_metric([], passed / (passed + failed) if passed + failed else 1.0)
        yield ratio
        when = GaugeMetricFamily("opsctl_compliance_last_scan_timestamp_seconds",
                                 "When the last scan finished.")
        when.add_metric([], finished)
        yield when
        expiry = data.get("password_expiry")
        if isinstance(expiry, dict) and expiry:
            family = GaugeMetricFamily(
                "opsctl_account_password_expiry_timestamp_seconds",
                "When the account's password stops working without a change (last scan).",
                labels=["user"])
            for user, when_ts in sorted(expiry.items()):
                if isinstance(when_ts, int | float):
                    family.add_metric([str(user)], float(when_ts))
            yield family
