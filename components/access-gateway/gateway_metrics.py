"""The access gateway's metrics for Prometheus (prometheus-client), on a port of their own.

They are served on `metrics_port` (not the upload port the balancer forwards to, so that the
internet never reads them); Prometheus in mgmt scrapes them through the site's flows.

Every label is bounded, whatever a client sends:
- `province`: one of the provinces the site names (config `provinces`), else `other`;
- `outcome`: accepted (stored in the database), spooled, rejected (400), failed (503);
- `reason`: for a rejected upload the class of its first problem (REASONS: the field that
  failed, or `body`), never the problem's text; `none` otherwise;
- `endpoint`: the paths the gateway serves, else `other`.

The site's expected upload interval per province is exported alongside
(`access_gateway_expected_upload_interval_seconds`), as the monitoring agent exports its
backup age policy: the alert rule compares two series of one target, and the threshold comes
from the site data without a generated rules file.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

OTHER = "other"
NONE = "none"
OUTCOMES = ("accepted", "spooled", "rejected", "failed")
REASONS = ("body", "province", "batch", "records", "contract_id", "contractor", "area_mu")
ENDPOINTS = ("/uploads", "/healthz", "/version")
_INDEX = re.compile(r"\[\d+\]")


def reason_of(problem: str) -> str:
    """The class of one of validate()'s problems ("records[3].area_mu: ..." -> area_mu)."""
    field = _INDEX.sub("", problem.split(":", 1)[0]).rsplit(".", 1)[-1].strip()
    return field if field in REASONS else "body"


class SpoolCollector:
    """Uploads waiting in the spool directory for the database, counted at scrape time."""

    def __init__(self, spool: Path) -> None:
        self.spool = spool

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            depth = sum(1 for p in self.spool.iterdir() if p.suffix == ".json")
        except FileNotFoundError:
            depth = 0
        yield GaugeMetricFamily("access_gateway_spool_uploads",
                                "Uploads in the spool directory waiting for the database",
                                value=depth)


class GatewayMetrics:
    def __init__(self, provinces: Mapping[str, Mapping], spool: Path,
                 registry: CollectorRegistry | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.registry = registry or CollectorRegistry()
        self.provinces = frozenset(provinces)
        self.clock = clock
        reg = self.registry
        self.uploads = Counter("access_gateway_uploads", "Uploads by province and outcome "
                               "(reason: why a rejected one was)",
                               ["province", "outcome", "reason"], registry=reg)
        self.records = Counter("access_gateway_records", "Records of accepted or spooled "
                               "uploads", ["province"], registry=reg)
        self.received = Counter("access_gateway_received_bytes", "Upload bodies received",
                                ["province"], registry=reg)
        self.last_upload = Gauge("access_gateway_last_upload_timestamp_seconds",
                                 "The last accepted or spooled upload (the gateway's start "
                                 "until it has seen one)", ["province"], registry=reg)
        self.expected = Gauge("access_gateway_expected_upload_interval_seconds",
                              "How often the site expects the province to upload",
                              ["province"], registry=reg)
        self.duration = Histogram("access_gateway_request_duration_seconds",
                                  "Time to answer a request", ["endpoint"], registry=reg)
        reg.register(SpoolCollector(spool))
        started = clock()
        for name, spec in provinces.items():
            self.expected.labels(name).set(float(spec["upload_interval_hours"]) * 3600)
            self.last_upload.labels(name).set(started)
        for name in (*sorted(self.provinces), OTHER):
            for outcome in OUTCOMES:  # every series from the start: increase() sees the first
                for reason in REASONS if outcome == "rejected" else (NONE,):
                    self.uploads.labels(name, outcome, reason)
            self.records.labels(name)
            self.received.labels(name)

    def province(self, value: object) -> str:
        """The label for a client's province string: a site province, or `other`."""
        return value if isinstance(value, str) and value in self.provinces else OTHER

    def timer(self, path: str):
        return self.duration.labels(path if path in ENDPOINTS else OTHER).time()

    def upload(self, province: str, size: int, outcome: str, problems: Sequence[str] = (),
               records: int = 0) -> None:
        """Count one upload (province already a label: see province())."""
        reason = reason_of(problems[0]) if outcome == "rejected" and problems else NONE
        self.uploads.labels(province, outcome, reason).inc()
        self.received.labels(province).inc(size)
        if outcome in ("accepted", "spooled"):
            self.records.labels(province).inc(records)
            self.last_upload.labels(province).set(self.clock())


def serve(metrics: GatewayMetrics, address: str, port: int) -> ThreadingHTTPServer:
    """A server answering GET /metrics (the caller runs serve_forever in a thread)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if self.path.split("?", 1)[0] != "/metrics":
                self.send_error(404)
                return
            data = generate_latest(metrics.registry)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer((address, port), Handler)
    server.daemon_threads = True
    return server
