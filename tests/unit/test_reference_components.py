"""The reference components from their built artifacts, on this machine's loopback: health,
version, the broken release, and the access gateway's validated, spooled uploads."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from opsctl.reference_components.build import build_reference


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def serve(tmp_path: Path):
    artifacts = {(a.component, a.version): a.path for a in build_reference()}
    procs = []

    def start(component: str, version: str, **config) -> str:
        root = tmp_path / f"{component}-{version}"
        with tarfile.open(artifacts[(component, version)]) as tar:
            tar.extractall(root, filter="data")
        port = free_port()
        cfg = tmp_path / f"{component}.json"
        cfg.write_text(json.dumps({"listen": "127.0.0.1", "port": port,
                                   "spool_dir": str(tmp_path / "spool"), **config}))
        procs.append(subprocess.Popen([sys.executable, str(root / "main.py"), str(cfg)]))
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return base
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"{component} did not listen")

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def post(url: str, body: object) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_query_service_versions_and_the_broken_release(serve):
    v100, v110 = serve("query-service", "1.0.0"), serve("query-service", "1.1.0")
    broken = serve("query-service", "9.9.9-broken")
    assert get(v100 + "/healthz") == (200, "ok\n")
    assert json.loads(get(v100 + "/version")[1])["version"] == "1.0.0"
    assert json.loads(get(v110 + "/version")[1])["version"] == "1.1.0"
    assert get(broken + "/healthz")[0] == 500
    # No database configured: a contract lookup says so, the service stays healthy.
    code, body = get(v100 + "/contracts/C-1")
    assert code == 503 and "no query database" in body


def test_access_gateway_validates_and_spools_uploads(serve, tmp_path):
    base = serve("access-gateway", "1.0.0")
    good = {"province": "hubei", "batch": "2026-11-29-1",
            "records": [{"contract_id": "420100-0001", "contractor": "张三", "area_mu": 3.5}]}
    code, body = post(base + "/uploads", good)
    assert code == 201 and body["stored"] == 1 and body["spooled"] is True
    assert json.loads((tmp_path / "spool" / f"{body['upload']}.json").read_text()) == good
    code, body = post(base + "/uploads", {"province": "Hubei!", "records": [{"area_mu": -1}]})
    assert code == 400
    assert "province: missing or not a site name" in body["errors"]
    assert "records[0].area_mu: must be a positive number" in body["errors"]
