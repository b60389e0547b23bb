"""The reference components from their built artifacts, on this machine's loopback: health,
version, the broken release, and the access gateway's validated, spooled uploads."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from gateway_code import gateway_module

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


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """The exposition as {(sample name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    code, text = get(url)
    assert code == 200, text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def test_access_gateway_metrics_count_uploads_per_province(serve, tmp_path):
    metrics_port = free_port()
    provinces = {"hubei": {"upload_interval_hours": 24}, "hunan": {"upload_interval_hours": 0.5}}
    before = time.time()
    base = serve("access-gateway", "1.0.0", metrics_port=metrics_port, provinces=provinces)
    metrics = f"http://127.0.0.1:{metrics_port}/metrics"
    # the gateway's upload port does not serve them: the balancer forwards to it
    assert get(base + "/metrics")[0] == 404
    start = scrape(metrics)
    assert start[("access_gateway_expected_upload_interval_seconds",
                  (("province", "hunan"),))] == 1800
    assert start[("access_gateway_spool_uploads", ())] == 0
    # the gateway's start stands for the last upload of a province it has not heard from
    assert start[("access_gateway_last_upload_timestamp_seconds",
                  (("province", "hubei"),))] >= int(before)

    good = {"province": "hubei", "batch": "b1",
            "records": [{"contract_id": "420100-0001", "contractor": "张三", "area_mu": 3.5},
                        {"contract_id": "420100-0002", "contractor": "李四", "area_mu": 1}]}
    assert post(base + "/uploads", good)[0] == 201
    assert post(base + "/uploads", {**good, "batch": "b2"})[0] == 201
    bad = {"province": "hubei", "batch": "b3", "records": [{"contract_id": "x",
                                                             "contractor": "y", "area_mu": 0}]}
    assert post(base + "/uploads", bad)[0] == 400
    # unknown, malformed and hostile provinces all land in one bucket
    for name in ("xizang-unlisted", "Hubei!", "a" * 500, "../../etc"):
        post(base + "/uploads", {**good, "province": name})
    post(base + "/uploads", [1, 2])

    after = scrape(metrics)

    def uploads(province: str, outcome: str, reason: str = "none") -> float:
        key = (("outcome", outcome), ("province", province), ("reason", reason))
        return after.get(("access_gateway_uploads_total", key), 0)

    assert uploads("hubei", "spooled") == 2 and uploads("hubei", "accepted") == 0
    assert uploads("hubei", "rejected", "area_mu") == 1
    assert uploads("other", "spooled") == 1  # xizang-unlisted is valid, only not the site's
    assert uploads("other", "rejected", "province") == 3
    assert uploads("other", "rejected", "body") == 1
    assert after[("access_gateway_records_total", (("province", "hubei"),))] == 4
    size = len(json.dumps(good).encode()) + len(json.dumps({**good, "batch": "b2"}).encode())
    size += len(json.dumps(bad).encode())
    assert after[("access_gateway_received_bytes_total", (("province", "hubei"),))] == size
    last = after[("access_gateway_last_upload_timestamp_seconds", (("province", "hubei"),))]
    assert last >= start[("access_gateway_last_upload_timestamp_seconds",
                          (("province", "hubei"),))]
    assert last <= time.time()
    assert after[("access_gateway_spool_uploads", ())] == 3  # spool depth, read at scrape time
    provinces_seen = {dict(labels).get("province") for _name, labels in after} - {None}
    assert provinces_seen == {"hubei", "hunan", "other"}
    assert after[("access_gateway_request_duration_seconds_count",
                  (("endpoint", "/uploads"),))] == 8
    # the spool drains (the database took the files): the depth follows at the next scrape
    for spooled in (tmp_path / "spool").glob("*.json"):
        spooled.unlink()
    assert scrape(metrics)[("access_gateway_spool_uploads", ())] == 0


def test_rejection_reasons_are_field_classes_never_text():
    module = gateway_module("gateway_metrics")
    assert module.reason_of("records[12].area_mu: must be a positive number") == "area_mu"
    assert module.reason_of("records[0]: not an object") == "records"
    assert module.reason_of("province: missing or not a site name") == "province"
    assert module.reason_of("the body must be a JSON object") == "body"
    assert module.reason_of("anything: else at all") == "body"


def _gateway_main(tmp_path: Path):
    """The access gateway's main module, from its built artifact (release.json and all)."""
    import importlib.util

    artifact = next(a.path for a in build_reference() if a.component == "access-gateway")
    here = tmp_path / "gateway"
    with tarfile.open(artifact) as tar:
        tar.extractall(here, filter="data")
    sys.path.insert(0, str(here))  # main.py imports gateway_metrics beside it
    try:
        spec = importlib.util.spec_from_file_location("gateway_main", here / "main.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(here))
    return module


def test_the_spool_drains_into_the_database_oldest_first_once_it_answers(tmp_path):
    gateway = _gateway_main(tmp_path)
    spool = tmp_path / "spool"
    uploads = [{"province": "hubei", "batch": str(n), "records": [{"contract_id": str(n)}]}
               for n in range(4)]
    for n, upload in enumerate(uploads):
        path = spool / f"{gateway.store_spool(spool, upload)}.json"
        os.utime(path, (1_000 + n, 1_000 + n))
    (spool / "garbage.json").write_text("not an upload")
    stored: list[dict] = []
    answers = iter([True, True, False])

    def database(upload: dict) -> str:
        if not next(answers, True):
            raise ConnectionError("the database is away")
        stored.append(upload)
        return gateway.upload_id(upload)

    # the database answers twice, then goes away: two go, the rest wait in the spool
    assert gateway.drain_spool(spool, database) == 2
    assert stored == uploads[:2]
    assert len(list(spool.glob("*.json"))) == 3
    # back: the rest go in the order they came; what is not an upload stays for a human
    assert gateway.drain_spool(spool, database) == 2
    assert stored == uploads
    assert [p.name for p in spool.glob("*.json")] == ["garbage.json"]
