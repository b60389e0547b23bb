"""The access gateway's metrics for Prometheus (prometheus-client), on a port of their own.

They are served on `metrics_port` (not the upload port the balancer forwards to, so that the
internet never reads them); Prometheus in mgmt scrapes them through the site's flows.

Every label is bounded, whatever a client sends:
- `province`: one of the provinces the site names (config `provinces`), else `other`;
- `outcome`: accepted (stored in the database), spooled, rejected (400), failed (503);
- `reason`: for a rejected upload the class of its first problem (REASONS: the field that
  failed, or `body`), never the problem's text; `none` otherwise;
- `endpoint`: the paths the gateway serves, else `other`;
- `outcome` of a province's metrics push (/metrics/write): PUSH_OUTCOMES.

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
from typing import Protocol

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
ENDPOINTS = ("/uploads", "/metrics/write", "/healthz", "/version")
PUSH_OUTCOMES = ("accepted", "unauthorized", "bad_request", "failed")
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


class Queue(Protocol):
    """The provinces' pushes waiting for the national Prometheus (metrics_write.PushQueue)."""

    def depth(self) -> tuple[int, int]: ...
    def oldest(self) -> tuple[str, bytes] | None: ...
    def remove(self, ident: str) -> bool: ...


class QueueCollector:
    def __init__(self, queue: Queue) -> None:
        self.queue = queue

    def collect(self) -> Iterator[GaugeMetricFamily]:
        requests, size = self.queue.depth()
        yield GaugeMetricFamily("access_gateway_metrics_write_queue_requests",
                                "Provinces' pushes waiting for the national Prometheus",
                                value=requests)
        yield GaugeMetricFamily("access_gateway_metrics_write_queue_bytes",
                                "Their size on disk", value=size)


class GatewayMetrics:
    def __init__(self, provinces: Mapping[str, Mapping], spool: Path,
                 registry: CollectorRegistry | None = None,
                 clock: Callable[[], float] = time.time, queue: Queue | None = None) -> None:
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
        self.pushes = Counter("access_gateway_metrics_write_requests", "Provinces' Prometheus "
                              "remote-write requests by outcome", ["province", "outcome"],
                              registry=reg)
        self.pushed_samples = Counter("access_gateway_metrics_write_samples", "Samples "
                                      "forwarded to the national Prometheus", ["province"],
                                      registry=reg)
        self.last_push = Gauge("access_gateway_metrics_write_last_timestamp_seconds",
                               "The last remote-write request queued for the national "
                               "Prometheus (0 until the first since the gateway started)",
                               ["province"], registry=reg)
        reg.register(SpoolCollector(spool))
        if queue is not None:
            reg.register(QueueCollector(queue))
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
            for outcome in PUSH_OUTCOMES:
                self.pushes.labels(name, outcome)
            self.pushed_samples.labels(name)
        for name in sorted(self.provinces):
            self.last_push.labels(name).set(0)  # 0: not since the gateway started

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


    def pushed(self, province: str, outcome: str, samples: int = 0) -> None:
        """Count one remote-write request (province already a label: see province())."""
        self.pushes.labels(province, outcome).inc()
        if outcome == "accepted":
            self.pushed_samples.labels(province).inc(samples)
            self.last_push.labels(province).set(self.clock())


def serve(metrics: GatewayMetrics, address: str, port: int,
          queue: Queue | None = None) -> ThreadingHTTPServer:
    """A server answering GET /metrics and, with a queue, the management zone's fetches of
    the provinces' pushes: GET /pushes/next (the oldest, its id in X-Push-Id; 204 when none)
    and DELETE /pushes/ID once the national Prometheus has it. The caller runs
    serve_forever in a thread."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, data: bytes = b"", content_type: str = "text/plain",
                    headers: Mapping[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._answer(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif path == "/pushes/next" and queue is not None:
                head = queue.oldest()
                if head is None:
                    self._answer(204)
                else:
                    self._answer(200, head[1], "application/x-protobuf",
                                 {"Content-Encoding": "snappy", "X-Push-Id": head[0]})
            else:
                self._answer(404)

        def do_DELETE(self) -> None:  # noqa: N802
            if queue is not None and self.path.startswith("/pushes/"):
                self._answer(204 if queue.remove(self.path[len("/pushes/"):]) else 404)
            else:
                self._answer(404)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer((address, port), Handler)
    server.daemon_threads = True
    return server
