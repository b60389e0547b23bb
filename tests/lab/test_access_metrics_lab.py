"""Data-access monitoring on the session's reference lab: uploads posted through lb1 (one
stored, one rejected) show up in Prometheus on mon1 as the access gateway's series for their
province, and Prometheus scrapes the gateway on both app hosts (job access-gateway, over the
mgmt-component-metrics flow), while the public cannot read the metrics through the balancer."""

from __future__ import annotations

import time

from labdata import public_request
from test_monitoring_lab import query, wait_for

PROVINCE = "ningxia"  # a province of the reference site that no other lab test uploads as


def uploads(site, selector: str) -> float:
    """The sum over both app hosts of access_gateway_uploads_total{province, selector}."""
    found = query(site, f'sum(access_gateway_uploads_total{{province="{PROVINCE}", '
                        f'{selector}}})')
    return float(found[0]["value"][1]) if found else 0.0


def one_value(site, expr: str) -> float | None:
    found = query(site, expr)
    return float(found[0]["value"][1]) if found else None


def test_prometheus_scrapes_the_gateway_on_both_app_hosts(reference):
    site, _ = reference

    def gateways_up():
        up = {r["metric"]["host"]: r["value"][1]
              for r in query(site, 'up{job="access-gateway"}')}
        return up if up == {h: "1" for h in site.groups["app"]} else None

    assert wait_for(gateways_up, 90), query(site, 'up{job="access-gateway"}')


def test_the_metrics_are_not_served_through_the_balancer(reference):
    site, _ = reference
    status, body = public_request(site, "GET", "/gateway/metrics")
    assert status == 404, body


def test_an_upload_and_a_rejected_one_reach_prometheus(reference):
    site, _ = reference
    stored_before = uploads(site, 'outcome=~"accepted|spooled"')
    rejected_before = uploads(site, 'outcome="rejected", reason="area_mu"')
    records_before = one_value(site, f'sum(access_gateway_records_total{{province="{PROVINCE}"}})')
    posted_at = time.time()
    batch = f"lab-metrics-{time.time_ns()}"
    records = [{"contract_id": f"NX-640104-{i:04d}", "contractor": "马*", "area_mu": 2.5}
               for i in range(3)]
    status, body = public_request(site, "POST", "/gateway/uploads",
                                  {"province": PROVINCE, "batch": batch, "records": records})
    assert status == 201 and body["stored"] == 3, body
    status, body = public_request(site, "POST", "/gateway/uploads", {
        "province": PROVINCE, "batch": f"{batch}-bad",
        "records": [{"contract_id": "NX-1", "contractor": "马*", "area_mu": -1}]})
    assert status == 400, body
    # a province the site does not name counts as `other`, never as a label of its own
    status, body = public_request(site, "POST", "/gateway/uploads", {
        "province": "no-such-province", "batch": f"{batch}-unknown",
        "records": [{"contract_id": "X-1", "contractor": "x", "area_mu": -1}]})
    assert status == 400, body

    def counted():
        stored = uploads(site, 'outcome=~"accepted|spooled"')
        rejected = uploads(site, 'outcome="rejected", reason="area_mu"')
        return (stored, rejected) == (stored_before + 1, rejected_before + 1)

    # scrape interval 15 s: a few scrapes at most
    assert wait_for(counted, 90), (uploads(site, 'outcome=~"accepted|spooled"'),
                                   uploads(site, 'outcome="rejected"'))
    records_now = one_value(site, f'sum(access_gateway_records_total{{province="{PROVINCE}"}})')
    assert records_now == (records_before or 0) + 3
    last = one_value(site, "max(access_gateway_last_upload_timestamp_seconds"
                           f'{{province="{PROVINCE}"}})')
    assert last is not None and last >= posted_at - 5  # the lab's hosts share this clock
    interval = one_value(site, "max(access_gateway_expected_upload_interval_seconds"
                               f'{{province="{PROVINCE}"}})')
    assert interval == site.spec.provinces[PROVINCE].upload_interval_hours * 3600
    assert one_value(site, f'sum(access_gateway_received_bytes_total{{province="{PROVINCE}"}})')
    assert not query(site, 'access_gateway_uploads_total{province="no-such-province"}')
