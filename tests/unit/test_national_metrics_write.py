"""The national node's receiving end of the provinces' metrics pushes, with real processes:
the access gateway from its built artifact takes a request Debian's Prometheus 2.42 really
sent (recorded, claiming site "liar") with a province's credential and queues it as that
province's; the relay (monitor/national_relay.py, as the monitoring host runs it) fetches the
queue over the gateway's metrics port into a stand-in national Prometheus that records what
it is sent. A wrong credential or a malformed body is never queued; a full queue is 503,
which Prometheus' sender retries; a request leaves the queue only once Prometheus has it.
(The codec: test_remote_write_codec.py; the lab: tests/lab/test_national_metrics_lab.py.)"""

from __future__ import annotations

import base64
import threading
import urllib.error
import urllib.request
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from gateway_code import gateway_module
from test_reference_components import free_port, get, scrape, serve  # noqa: F401 - fixture

from monitor import national_relay

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # deprecated in 3.11: the gateway's hosts and opsctl still use it

RECORDED = Path(__file__).parent / "data" / "prometheus-2.42-remote-write.bin"
PROVINCES = {"hubei": {"upload_interval_hours": 24}, "gansu": {"upload_interval_hours": 24}}
PASSWORDS = {"hubei": "hubei-secret-0123456789abcdefghij", "gansu": "gansu-secret-0123456789abc"}


class NationalPrometheus:
    """Records every remote write it is sent; answers `status`."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 204
        national = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                national.received.append((dict(self.headers), body))
                self.send_response(national.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/v1/write"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def national():
    prometheus = NationalPrometheus()
    yield prometheus
    prometheus.server.shutdown()
    prometheus.server.server_close()


def gateway(serve, **push_config) -> tuple[str, str]:  # noqa: F811 - the fixture's value
    """(the push URL, the gateway's metrics port base URL) of a national gateway."""
    metrics_port = free_port()
    users = {p: crypt.crypt(pw, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 4))
             for p, pw in PASSWORDS.items()}
    base = serve("access-gateway", "1.0.0", metrics_port=metrics_port, provinces=PROVINCES,
                 metrics_write={"users": users, **push_config})
    return base + "/metrics/write", f"http://127.0.0.1:{metrics_port}"


def push(url: str, body: bytes, user: str | None, password: str | None) -> tuple[int, dict]:
    headers = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
               "X-Prometheus-Remote-Write-Version": "0.1.0"}
    if user is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(
            f"{user}:{password}".encode()).decode()
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


def requests(metrics: str) -> dict[tuple[str, str], float]:
    return {(dict(labels)["province"], dict(labels)["outcome"]): value
            for (name, labels), value in scrape(metrics + "/metrics").items()
            if name == "access_gateway_metrics_write_requests_total"}


def queued(metrics: str) -> float:
    return scrape(metrics + "/metrics")[("access_gateway_metrics_write_queue_requests", ())]


def relay(gateways: list[str], prometheus: str) -> national_relay.Round:
    return national_relay.relay_once(gateways, national_relay._fetch,
                                     national_relay._post(prometheus), national_relay._delete)


def decoded(body: bytes) -> list:
    codec = gateway_module("remote_write")
    return codec.decode_write_request(codec.snappy_decompress(body))


def test_a_push_is_queued_as_the_credentials_province_and_relayed(serve, national):  # noqa: F811
    codec = gateway_module("remote_write")
    sent = decoded(RECORDED.read_bytes())
    assert {dict(s.labels)["site"] for s in sent} == {"liar"}
    url, metrics = gateway(serve)

    assert push(url, RECORDED.read_bytes(), "hubei", PASSWORDS["hubei"])[0] == 204
    assert queued(metrics) == 1
    assert national.received == []  # nothing leaves the gateway by itself

    done = relay([metrics], national.url)
    assert (done.relayed, done.dropped, done.unreachable) == (1, 0, [])
    [(headers, body)] = national.received
    assert headers["Content-Encoding"] == "snappy"
    assert headers["Content-Type"] == "application/x-protobuf"
    assert headers["X-Prometheus-Remote-Write-Version"] == "0.1.0"
    # every series is hubei's whatever the sender said; nothing else about it changed
    assert decoded(body) == codec.with_site(sent, "hubei")
    assert queued(metrics) == 0
    assert relay([metrics], national.url).relayed == 0

    counted = scrape(metrics + "/metrics")
    assert requests(metrics)[("hubei", "accepted")] == 1
    assert counted[("access_gateway_metrics_write_samples_total", (("province", "hubei"),))] \
        == sum(len(s.samples) for s in sent)
    assert counted[("access_gateway_metrics_write_last_timestamp_seconds",
                    (("province", "hubei"),))] > 0


def test_the_relay_keeps_what_prometheus_did_not_take(serve, national):  # noqa: F811
    url, metrics = gateway(serve)
    for province in ("hubei", "gansu"):
        assert push(url, RECORDED.read_bytes(), province, PASSWORDS[province])[0] == 204
    national.status = 503  # failing: both stay queued, in order
    done = relay([metrics], national.url)
    assert done.prometheus_down and done.relayed == 0 and queued(metrics) == 2
    national.status = 204
    assert relay([metrics], national.url).relayed == 2
    sites = [{dict(s.labels)["site"] for s in decoded(body)} for _, body in national.received]
    assert sites == [{"hubei"}, {"hubei"}, {"gansu"}]  # the first retried, then the second
    assert queued(metrics) == 0


def test_a_request_prometheus_can_never_store_is_dropped_not_retried(serve, national):  # noqa: F811
    url, metrics = gateway(serve)
    assert push(url, RECORDED.read_bytes(), "gansu", PASSWORDS["gansu"])[0] == 204
    national.status = 400  # out of bounds, say
    done = relay([metrics], national.url)
    assert (done.relayed, done.dropped) == (0, 1) and queued(metrics) == 0


def test_an_unreachable_gateway_does_not_stop_the_others(serve, national):  # noqa: F811
    url, metrics = gateway(serve)
    assert push(url, RECORDED.read_bytes(), "gansu", PASSWORDS["gansu"])[0] == 204
    away = f"http://127.0.0.1:{free_port()}"
    done = relay([away, metrics], national.url)
    assert done.unreachable == [away] and done.relayed == 1


@pytest.mark.parametrize(("user", "password"), [
    ("hubei", PASSWORDS["gansu"]),  # another province's password
    ("hubei", PASSWORDS["hubei"] + "x"),
    ("nobody", PASSWORDS["hubei"]),
    (None, None),
])
def test_a_push_without_the_provinces_credential_is_refused(serve, user, password):  # noqa: F811
    url, metrics = gateway(serve)
    status, headers = push(url, RECORDED.read_bytes(), user, password)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Basic")
    assert queued(metrics) == 0
    assert requests(metrics)[("other", "unauthorized")] == 1
    assert requests(metrics)[("hubei", "accepted")] == 0


def test_a_malformed_push_is_400_and_never_queued(serve):  # noqa: F811
    url, metrics = gateway(serve)
    assert push(url, b"\xff" * 11, "gansu", PASSWORDS["gansu"])[0] == 400
    assert queued(metrics) == 0
    assert requests(metrics)[("gansu", "bad_request")] == 1


def test_a_full_queue_is_503_so_the_sender_keeps_it(serve):  # noqa: F811
    codec = gateway_module("remote_write")
    size = len(codec.snappy_compress(codec.encode_write_request(
        codec.with_site(decoded(RECORDED.read_bytes()), "gansu"))))
    url, metrics = gateway(serve, max_queue_bytes=size * 3)
    statuses = [push(url, RECORDED.read_bytes(), "gansu", PASSWORDS["gansu"])[0]
                for _ in range(4)]
    assert statuses == [204, 204, 204, 503]
    assert requests(metrics)[("gansu", "failed")] == 1
    assert queued(metrics) == 3


def test_a_gateway_without_provinces_takes_no_pushes_and_has_no_queue(serve):  # noqa: F811
    """A province's own gateway (no credentials) does not answer either path at all."""
    metrics_port = free_port()
    base = serve("access-gateway", "1.0.0", provinces={}, metrics_port=metrics_port)
    assert push(base + "/metrics/write", RECORDED.read_bytes(), "gansu",
                PASSWORDS["gansu"])[0] == 404
    assert get(f"http://127.0.0.1:{metrics_port}/pushes/next")[0] == 404
