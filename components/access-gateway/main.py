"""access-gateway: the platform access system (平台接入), a lab stand-in.

A province uploads its incremental data here:

POST /uploads   JSON {"province": "xx", "batch": "id", "records": [{"contract_id": ...,
                "contractor": ..., "area_mu": n}, ...]}
                -> 201 {"stored": n, "upload": id} or 400 with the reasons
GET  /healthz   200 "ok";   GET /version
POST /metrics/write   a province's Prometheus remote_write (metrics_write.py), basic auth with
                the province's credential; relabelled as that province and queued for the
                national Prometheus (config `metrics_write`: users, push_dir, max_queue_bytes)
GET  /metrics   on `metrics_port` only (gateway_metrics.py): uploads per province and outcome,
                records, bytes, last upload, spool depth, request durations, metrics pushed;
                and there the queue of pushes the management zone fetches (GET /pushes/next,
                DELETE /pushes/ID)

Valid uploads go to the `operational` database (table `uploads`, psycopg2) when a DSN is
configured, otherwise into a spool directory, one JSON file per upload. When the database
is configured but cannot be reached, the upload is spooled all the same (201 with
"spooled": true) so that a province's upload is never lost to a database outage; every
DRAIN_SECONDS the spool goes into the database, oldest first, as soon as it answers again
(an upload's id is its content's hash: storing one twice stores it once).
Usage: main.py CONFIG.json
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from gateway_metrics import GatewayMetrics, serve
from metrics_write import DEFAULT_MAX_QUEUE_BYTES, MetricsWrite, PushQueue

HERE = Path(__file__).resolve().parent
RELEASE = json.loads((HERE / "release.json").read_text())
MAX_BODY = 4 * 1024 * 1024
PROVINCE = re.compile(r"^[a-z][a-z0-9_-]{0,30}$")


def validate(upload: object) -> list[str]:
    """What is wrong with an upload (empty when it may be stored)."""
    if not isinstance(upload, dict):
        return ["the body must be a JSON object"]
    problems = []
    if not PROVINCE.match(str(upload.get("province", ""))):
        problems.append("province: missing or not a site name")
    if not str(upload.get("batch", "")).strip():
        problems.append("batch: missing")
    records = upload.get("records")
    if not isinstance(records, list) or not records:
        return [*problems, "records: a non-empty list is required"]
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            problems.append(f"records[{i}]: not an object")
            continue
        if not str(rec.get("contract_id", "")).strip():
            problems.append(f"records[{i}].contract_id: missing")
        if not str(rec.get("contractor", "")).strip():
            problems.append(f"records[{i}].contractor: missing")
        area = rec.get("area_mu")
        if not isinstance(area, int | float) or isinstance(area, bool) or area <= 0:
            problems.append(f"records[{i}].area_mu: must be a positive number")
    return problems


def upload_id(upload: dict) -> str:
    canonical = json.dumps(upload, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(canonical).hexdigest()[:16]


def store_spool(spool: Path, upload: dict) -> str:
    ident = upload_id(upload)
    spool.mkdir(parents=True, exist_ok=True)
    tmp = spool / f".{ident}.tmp"
    tmp.write_text(json.dumps(upload, ensure_ascii=False))
    os.replace(tmp, spool / f"{ident}.json")
    return ident


def store_database(dsn: str, upload: dict) -> str:
    import psycopg2  # noqa: PLC0415 - only when a database is configured
    from psycopg2.extras import Json  # noqa: PLC0415

    ident = upload_id(upload)
    try:
        conn = psycopg2.connect(dsn, connect_timeout=3)
    except psycopg2.OperationalError as exc:
        raise ConnectionError(str(exc)) from exc
    try:
        with conn, conn.cursor() as cur:
            cur.execute("INSERT INTO uploads (upload_id, province, batch, body) "
                        "VALUES (%s, %s, %s, %s) ON CONFLICT (upload_id) DO NOTHING",
                        (ident, upload["province"], upload["batch"], Json(upload)))
    finally:
        conn.close()
    return ident


DRAIN_SECONDS = 30


def drain_spool(spool: Path, store: Callable[[dict], str]) -> int:
    """Store the spooled uploads, oldest first, removing each once stored; stop at the first
    the store refuses (the database is still away). How many went. A file that is not an
    upload stays, and keeps the spool depth up until somebody looks."""
    moved = 0
    for path in sorted(spool.glob("*.json"), key=lambda p: (p.stat().st_mtime, p.name)):
        try:
            upload = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        try:
            store(upload)
        except Exception:  # noqa: BLE001 - any refusal: try again at the next round
            break
        path.unlink(missing_ok=True)
        moved += 1
    return moved


def drain_forever(spool: Path, dsn: str, interval: float = DRAIN_SECONDS) -> None:
    while True:
        time.sleep(interval)
        drain_spool(spool, lambda upload: store_database(dsn, upload))


class Handler(BaseHTTPRequestHandler):
    server_version = "access-gateway"
    config: dict = {}
    metrics: GatewayMetrics
    metrics_write: MetricsWrite | None = None

    def _send(self, status: int, body: dict | str, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body, ensure_ascii=False) if isinstance(body, dict) else body
        raw = (data + "\n").encode() if status != 204 else b""
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:  # noqa: N802
        with self.metrics.timer(self.path):
            if self.path == "/healthz":
                self._send(200 if RELEASE.get("healthy", True) else 500, "ok")
            elif self.path == "/version":
                self._send(200, {"component": "access-gateway", "version": RELEASE["version"]})
            else:
                self._send(404, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        with self.metrics.timer(self.path):
            if self.path == "/uploads":
                self._send(*self._upload())
            elif self.path == "/metrics/write" and self.metrics_write is not None:
                self._metrics_write(self.metrics_write)
            else:
                self._send(404, {"error": "not found"})

    def _metrics_write(self, receiver: MetricsWrite) -> None:
        province = receiver.province(self.headers.get("Authorization"))
        length = int(self.headers.get("Content-Length") or 0)
        if province is None:
            self.metrics.pushed(self.metrics.province(None), "unauthorized")
            self._send(401, {"error": "a province's credential is required"},
                       {"WWW-Authenticate": 'Basic realm="national metrics"'})
            return
        if length <= 0 or length > MAX_BODY:
            self.metrics.pushed(self.metrics.province(province), "bad_request")
            self._send(400, {"error": f"body must be 1..{MAX_BODY} bytes"})
            return
        outcome = receiver.receive(province, self.rfile.read(length))
        self.metrics.pushed(self.metrics.province(province), outcome.outcome, outcome.samples)
        self._send(outcome.status, {"error": outcome.message} if outcome.message else "")

    def _upload(self) -> tuple[int, dict]:
        """Read, validate and store one upload, counting it in the metrics."""
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > MAX_BODY:
            problems = [f"body must be 1..{MAX_BODY} bytes"]
            self.metrics.upload(self.metrics.province(None), 0, "rejected", problems)
            return 400, {"errors": problems}
        try:
            upload = json.loads(self.rfile.read(length))
        except ValueError:
            upload = None
            problems = ["body is not JSON"]
        else:
            problems = validate(upload)
        province = self.metrics.province(upload.get("province")
                                         if isinstance(upload, dict) else None)
        if problems:
            self.metrics.upload(province, length, "rejected", problems)
            return 400, {"errors": problems}
        try:
            ident, spooled = self._store(upload)
        except Exception as exc:  # noqa: BLE001 - storage failure: unavailable, retry later
            self.metrics.upload(province, length, "failed")
            return 503, {"errors": [f"storage: {type(exc).__name__}"]}
        self.metrics.upload(province, length, "spooled" if spooled else "accepted",
                            records=len(upload["records"]))
        return 201, {"stored": len(upload["records"]), "upload": ident, "spooled": spooled}

    def _store(self, upload: dict) -> tuple[str, bool]:
        """The upload's id, and whether it went to the spool rather than the database."""
        dsn = self.config.get("database_dsn", "")
        if dsn:
            try:
                return store_database(dsn, upload), False
            except ConnectionError:
                pass
        return store_spool(Path(self.config["spool_dir"]), upload), True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def main(argv: list[str]) -> None:
    config = json.loads(Path(argv[1]).read_text())
    listen = config.get("listen", "127.0.0.1")
    Handler.config = config
    pushes = config.get("metrics_write") or {}
    queue = None
    if pushes.get("users"):
        queue = PushQueue(Path(pushes.get("push_dir") or
                               Path(config["spool_dir"]).with_name("pushes")),
                          int(pushes.get("max_queue_bytes") or DEFAULT_MAX_QUEUE_BYTES))
        Handler.metrics_write = MetricsWrite(pushes["users"], queue)
    Handler.metrics = GatewayMetrics(config.get("provinces") or {}, Path(config["spool_dir"]),
                                     queue=queue)
    if config.get("database_dsn"):
        threading.Thread(target=drain_forever, daemon=True,
                         args=(Path(config["spool_dir"]), config["database_dsn"])).start()
    if config.get("metrics_port"):
        exporter = serve(Handler.metrics, listen, int(config["metrics_port"]), queue)
        threading.Thread(target=exporter.serve_forever, daemon=True).start()
    server = ThreadingHTTPServer((listen, int(config["port"])), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv)
