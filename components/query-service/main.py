"""query-service: the platform's public query service (信息共享与服务), a lab stand-in.

GET /healthz          200 "ok" while this release is healthy
GET /version          {"component": ..., "version": ...}
GET /contracts/<id>   one land contract from the `query` database (the replica), by id

Standard library only, plus psycopg2 (Debian's python3-psycopg2) when a DSN is configured.
The database is never needed for /healthz or /version. Usage: main.py CONFIG.json
"""

from __future__ import annotations

import json
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
RELEASE = json.loads((HERE / "release.json").read_text())
CONTRACT_ID = re.compile(r"^/contracts/([A-Za-z0-9-]{1,64})$")
QUERY = ("SELECT contract_id, contractor, area_mu, village_code FROM contracts "
         "WHERE contract_id = %s")


def lookup_contract(dsn: str, contract_id: str) -> dict | None:
    """One row of the query database's `contracts` table, or None."""
    import psycopg2  # noqa: PLC0415 - only when a database is configured

    conn = psycopg2.connect(dsn, connect_timeout=3)
    try:
        with conn.cursor() as cur:
            cur.execute(QUERY, (contract_id,))
            row = cur.fetchone()
    finally:
        conn.close()
    if row is None:
        return None
    return {"contract_id": row[0], "contractor": row[1], "area_mu": float(row[2]),
            "village_code": row[3]}


class Handler(BaseHTTPRequestHandler):
    server_version = "query-service"
    config: dict = {}

    def _send(self, status: int, body: dict | str) -> None:
        data = (json.dumps(body, ensure_ascii=False) if isinstance(body, dict) else body)
        raw = (data + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if isinstance(body, dict)
                         else "text/plain")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path == "/healthz":
            if RELEASE.get("healthy", True):
                self._send(200, "ok")
            else:
                self._send(500, "unhealthy release")
            return
        if self.path == "/version":
            self._send(200, {"component": "query-service", "version": RELEASE["version"]})
            return
        match = CONTRACT_ID.match(self.path)
        if match:
            dsn = self.config.get("database_dsn", "")
            if not dsn:
                self._send(503, {"error": "no query database configured"})
                return
            try:
                row = lookup_contract(dsn, match.group(1))
            except Exception as exc:  # noqa: BLE001 - any database failure: service unavailable
                self._send(503, {"error": f"query database: {type(exc).__name__}"})
                return
            if row is None:
                self._send(404, {"error": "no such contract"})
            else:
                self._send(200, row)
            return
        self._send(404, {"error": "not found"})

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def main(argv: list[str]) -> None:
    config = json.loads(Path(argv[1]).read_text())
    Handler.config = config
    server = ThreadingHTTPServer((config.get("listen", "127.0.0.1"), int(config["port"])),
                                 Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv)
