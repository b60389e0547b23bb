"""The backup repository's newest backups, from the status file a timer of pgBackRest's own
account writes (monitor/pgbackrest_status.py): the agent never touches the repository."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily, Metric

TYPES = ("full", "diff", "incr")


class PgBackRestCollector:
    def __init__(self, path: Path | None, max_age_hours: float | None = None) -> None:
        self.path, self.max_age_hours = path, max_age_hours

    def collect(self) -> Iterator[Metric]:
        if self.path is None:
            return
        readable = GaugeMetricFamily("opsctl_pgbackrest_status_readable",
                                     "Whether the repository status file could be read.")
        try:
            data = json.loads(self.path.read_text())
            written = float(data["written"])
            stanzas = list(data["stanzas"])
        except (OSError, ValueError, KeyError, TypeError):
            readable.add_metric([], 0)
            yield readable
            return
        readable.add_metric([], 0 if data.get("error") else 1)
        yield readable
        when = GaugeMetricFamily("opsctl_pgbackrest_status_timestamp_seconds",
                                 "When the repository status was last read.")
        when.add_metric([], written)
        yield when
        ok = GaugeMetricFamily("opsctl_pgbackrest_stanza_ok",
                               "1 when pgBackRest reports the stanza ok (status code 0).",
                               labels=["stanza"])
        count = GaugeMetricFamily("opsctl_pgbackrest_backups",
                                  "Backups in the repository (without errors).",
                                  labels=["stanza"])
        newest = GaugeMetricFamily(
            "opsctl_pgbackrest_backup_last_timestamp_seconds",
            "When the newest backup of each type finished.", labels=["stanza", "type"])
        policy = GaugeMetricFamily(
            "opsctl_pgbackrest_backup_max_age_seconds",
            "The site's policy: the newest backup may be at most this old.", labels=["stanza"])
        for stanza in stanzas:
            if not isinstance(stanza, dict) or not stanza.get("name"):
                continue
            name = str(stanza["name"])
            ok.add_metric([name], 1.0 if stanza.get("status_code") == 0 else 0.0)
            count.add_metric([name], float(stanza.get("backups", 0)))
            for kind in TYPES:
                stop = stanza.get("newest", {}).get(kind)
                if isinstance(stop, int | float):
                    newest.add_metric([name, kind], float(stop))
            if self.max_age_hours is not None:
                policy.add_metric([name], self.max_age_hours * 3600)
        yield from (ok, count, newest)
        if self.max_age_hours is not None:
            yield policy
