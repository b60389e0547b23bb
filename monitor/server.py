"""The agent's own HTTP(S) server for the exposition.

Why not prometheus-client's start_http_server: with TLS it does the handshake on the
accept path, so one client holding a silent connection stalls every scrape. Here the
accept loop only accepts; each connection gets its own thread (bounded), its own socket
timeout, and does its TLS handshake there.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from monitor.webconfig import WebConfig


class ScrapeServer:
    def __init__(self, address: str, port: int, registry: CollectorRegistry, web: WebConfig,
                 *, timeout: float = 10.0, max_connections: int = 32) -> None:
        self.registry = registry
        self.web = web
        self.timeout = timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((address, port))
        self.socket.listen(128)
        self.address = self.socket.getsockname()[:2]
        self._closing = threading.Event()

    def serve_forever(self) -> None:
        self.socket.settimeout(0.5)
        while not self._closing.is_set():
            try:
                conn, peer = self.socket.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._closing.is_set():
                    break
                raise
            if not self._slots.acquire(blocking=False):
                conn.close()  # every slot busy: refuse rather than queue without bound
                continue
            threading.Thread(target=self._serve_one, args=(conn, peer), daemon=True).start()

    def shutdown(self) -> None:
        self._closing.set()
        self.socket.close()

    def _serve_one(self, conn: socket.socket, peer: tuple) -> None:
        try:
            conn.settimeout(self.timeout)
            tls = self.web.current_tls()  # a rotated certificate is taken up here
            if tls is not None:
                conn = tls.wrap_socket(conn, server_side=True)
            _Handler(conn, peer, self)
        except (OSError, ssl.SSLError):
            pass  # a client that went away or spoke nonsense costs only its own thread
        finally:
            try:
                conn.close()
            finally:
                self._slots.release()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ScrapeServer  # type: ignore[assignment]

    def setup(self) -> None:
        self.timeout = self.server.timeout
        super().setup()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return  # scrapes every 15 s would flood the journal

    def _user(self) -> tuple[str | None, str | None]:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None, None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None, None
        return user, password

    def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if not self.server.web.authorised(*self._user()):
            self._send(401, b"unauthorised\n",
                       headers={"WWW-Authenticate": 'Basic realm="opsctl monitor"'})
            return
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            start = time.monotonic()
            body = generate_latest(self.server.registry)
            _SCRAPE_SECONDS.set(time.monotonic() - start)
            headers = {}
            if "gzip" in self.headers.get("Accept-Encoding", ""):
                body = gzip.compress(body, compresslevel=1)
                headers["Content-Encoding"] = "gzip"
            self._send(200, body, CONTENT_TYPE_LATEST, headers)
        elif path in ("/-/healthy", "/-/ready"):
            self._send(200, b"ok\n")
        elif path == "/":
            self._send(200, b"opsctl monitor agent: /metrics\n")
        else:
            self._send(404, b"not found\n")

    do_HEAD = do_GET  # noqa: N815


class _LastScrape:
    value = 0.0

    def set(self, value: float) -> None:
        self.value = value


_SCRAPE_SECONDS = _LastScrape()
