"""The program pki status runs on each host (opsctl/remote/pki_probe.py), run here as the
transport runs it (`python3 - REQUEST`, the program on stdin) against local TLS servers: a
plain one and one that speaks PostgreSQL's SSLRequest first."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import subprocess
import sys
import threading

import pytest

from opsctl.pki import ensure_host_certificates
from opsctl.pki.certs import from_der, from_pem
from opsctl.remote import program
from opsctl.site import load_site


def _serve(cert: str, key: str, postgres: bool) -> tuple[int, threading.Event]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    done = threading.Event()

    def run() -> None:
        with listener:
            while not done.is_set():
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                with conn:
                    if postgres:
                        assert conn.recv(8)[4:] == (80877103).to_bytes(4, "big")
                        conn.sendall(b"S")
                    try:
                        with context.wrap_socket(conn, server_side=True) as tls:
                            tls.recv(1)
                    except (OSError, ssl.SSLError):
                        pass

    threading.Thread(target=run, daemon=True).start()
    return listener.getsockname()[1], done


@pytest.fixture
def issued(state_dir, site_copy):
    site = load_site(site_copy)
    pki, _ = ensure_host_certificates(site)
    return pki


def _probe(request: dict) -> dict:
    done = subprocess.run([sys.executable, "-", json.dumps(request)], input=program("pki_probe"),
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


@pytest.mark.parametrize("postgres", [False, True], ids=["tls", "postgres-sslrequest"])
def test_the_probe_reads_files_and_the_certificate_a_service_presents(issued, postgres):
    cert, key = str(issued.host_cert("db1")), str(issued.host_key("db1"))
    port, done = _serve(cert, key, postgres)
    try:
        answer = _probe({"files": [cert, "/nonexistent/host.crt"], "timeout": 5,
                         "endpoints": [{"address": "127.0.0.1", "port": port,
                                        "starttls": "postgres" if postgres else None,
                                        "name": "db1"}],
                         "client_cert": cert, "client_key": key})
    finally:
        done.set()
    issued_fp = from_pem(issued.host_cert("db1").read_text()).fingerprint
    assert from_pem(answer["files"][cert]["pem"]).fingerprint == issued_fp
    assert "error" in answer["files"]["/nonexistent/host.crt"]
    (endpoint,) = answer["endpoints"]
    assert from_der(base64.b64decode(endpoint["der"])).fingerprint == issued_fp


def test_a_closed_port_is_an_error_not_a_failure(issued):
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    answer = _probe({"files": [], "timeout": 2, "client_cert": "", "client_key": "",
                     "endpoints": [{"address": "127.0.0.1", "port": port, "starttls": None}]})
    assert answer["endpoints"][0]["error"]
