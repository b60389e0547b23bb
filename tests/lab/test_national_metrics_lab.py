"""The national node takes its provinces' metrics (docs/national-view.md), on the session's
reference lab: a real Prometheus, Debian's 2.42 as every province runs, pushes by remote_write
from the lab's `public` namespace through lb1 to the access gateways with one province's
credential while claiming to be another site; the relay on mon1 fetches the gateways' queues
(nothing in the internet zone reaches into mgmt), and the national Prometheus holds every
scrape of the sender labelled as the credential's province, never as the sender's claim; a
wrong credential stores nothing.

The stand-in sits in `public` because the two labs have no line between them yet; a
province's real pushes come over its uplink flow (uplink-national) to the same lb:443."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from test_monitoring_lab import query, wait_for

from opsctl.lab.plan import plan_lab
from opsctl.paths import project_root
from opsctl.pki import pki_dir
from opsctl.secrets import ensure_secret, uplink_secret

PROVINCE = "qinghai"  # a province of the reference site that no other lab test pushes as
PROMETHEUS = project_root() / ".venv" / "bin" / "prometheus"
JOB = "province-prometheus"


def _config(site, password_file: Path, wrong_file: Path, port: int) -> str:
    url = f"https://{site.hosts['lb1'].address}/gateway/metrics/write"
    ca = pki_dir(site.name) / "ca.crt"

    def push(name: str, secret: Path) -> str:
        return f"""
  - name: {name}
    url: {url}
    basic_auth: {{username: {PROVINCE}, password_file: {secret}}}
    tls_config: {{ca_file: {ca}}}
    queue_config: {{batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 1s}}
    write_relabel_configs:
      - {{source_labels: [__name__], regex: "up|prometheus_build_info", action: keep}}"""

    return f"""global:
  scrape_interval: 2s
  external_labels: {{site: liar}}
scrape_configs:
  - job_name: {JOB}
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
remote_write:{push("national", password_file)}{push("wrong", wrong_file)}
"""


@pytest.fixture(scope="module")
def province_prometheus(reference):
    """A real Prometheus in the `public` namespace pushing as PROVINCE; stopped by its PID."""
    site, _ = reference
    if not PROMETHEUS.is_file():
        pytest.fail(f"{PROMETHEUS} is missing: ./setup installs it from Debian's prometheus")
    work = Path(tempfile.mkdtemp(prefix="opsctl-national-push-"))
    password = work / "password"
    password.write_text(ensure_secret(site.name, uplink_secret(PROVINCE)))
    wrong = work / "wrong"
    wrong.write_text("not-the-credential")
    port = 19090
    (work / "prometheus.yml").write_text(_config(site, password, wrong, port))
    netns = plan_lab(site).node("public").netns
    log = (work / "prometheus.log").open("w")
    started = time.time()
    proc = subprocess.Popen(
        ["ip", "netns", "exec", netns, str(PROMETHEUS),
         f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield site, started, work / "prometheus.log"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        subprocess.run(["rm", "-rf", str(work)], check=False)


def test_a_provinces_push_is_labelled_by_its_credential_not_its_claim(province_prometheus):
    site, started, log = province_prometheus

    def arrived():
        return query(site, f'up{{job="{JOB}", site="{PROVINCE}"}}')

    found = wait_for(arrived, 120)
    assert found, log.read_text()[-3000:]
    assert found[0]["value"][1] == "1"
    # the sender said site="liar": nothing of it is stored under that name
    assert not query(site, f'{{job="{JOB}", site="liar"}}')
    assert query(site, f'prometheus_build_info{{job="{JOB}", site="{PROVINCE}"}}')
    # only what the sender's write_relabel_configs kept travelled
    assert not query(site, f'scrape_duration_seconds{{job="{JOB}"}}')
    # the samples are the sender's own, with its timestamps: a minute of pushes holds its
    # scrapes 2 s apart, every one of them
    def scrapes():
        found = query(site, f'count_over_time(up{{job="{JOB}", site="{PROVINCE}"}}[30s])')
        return found and float(found[0]["value"][1]) >= 14

    assert wait_for(scrapes, 60), query(site, f'count_over_time(up{{job="{JOB}"}}[30s])')

    def counted():
        got = query(site, "sum by (outcome) (access_gateway_metrics_write_requests_total"
                          f'{{province=~"{PROVINCE}|other"}})')
        outcomes = {r["metric"]["outcome"]: float(r["value"][1]) for r in got}
        return outcomes if outcomes.get("accepted") and outcomes.get("unauthorized") else None

    outcomes = wait_for(counted, 60)
    assert outcomes, query(site, "access_gateway_metrics_write_requests_total")
    # both gateways' queues are drained by the relay (they hold at most a round's pushes)
    queues = query(site, "access_gateway_metrics_write_queue_requests")
    assert sorted(r["metric"]["host"] for r in queues) == sorted(site.groups["app"])
    assert all(float(r["value"][1]) < 10 for r in queues), queues
    last = query(site, "max(access_gateway_metrics_write_last_timestamp_seconds"
                       f'{{province="{PROVINCE}"}})')
    assert last and float(last[0]["value"][1]) >= started - 5  # the lab shares this clock


def test_a_wrong_credential_is_refused_and_stores_nothing(province_prometheus):
    site, _, log = province_prometheus
    # the second queue (a wrong password) is answered 401, which Prometheus does not retry
    assert wait_for(lambda: "401" in log.read_text(), 60), log.read_text()[-3000:]
    # nothing of the province's pushes counts for any other province
    assert not query(site, f'{{job="{JOB}", site!="{PROVINCE}"}}')
