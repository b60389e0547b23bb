"""A province made by `opsctl site new` comes up in a second lab beside the reference one,
converges unchanged, and its own query service answers a lookup."""

from __future__ import annotations

import time

import background
import pytest
from labdata import extract, leader, public_request, summary

from opsctl.apply import history
from opsctl.lab import lifecycle


@pytest.fixture(scope="module")
def province(reference):
    """(the province's site, its converge): made by `opsctl site new` when the tests were
    collected, brought up and converged beside the clock-bound modules (conftest.py)."""
    chain = background.CHAINS["province"]
    try:
        yield chain.site, chain.wait("apply")
    finally:
        chain.stop()  # its cleanup takes the province's lab down


def test_a_province_comes_up_beside_the_reference_and_converges(province, reference):
    national, _ = reference
    site, converged = province
    assert converged.ok, converged.tail()
    run = history.resolve("last", site.name)
    assert run.result == "ok", run.failures
    assert sorted(run.hosts) == sorted(f"gansu-{h}" for h in national.hosts)
    for one in (site, national):
        assert all(h.ssh for h in lifecycle.status(one)), one.name
    wrong = [r.as_dict() for r in lifecycle.check_flows(site) if not r.ok]
    assert not wrong, wrong[:5]


def test_the_province_query_service_answers_a_lookup(province):
    """Its own data path end to end: the extract on whichever member leads (as its job
    runs), then a lookup from its `public` namespace through its lb1 to its query service."""
    province, _ = province
    code, out = extract(province, leader(province))
    assert code == 0, out
    assert summary(out)["read"] >= 5
    deadline = time.monotonic() + 15
    while True:
        status, body = public_request(province, "GET", "/query/contracts/LAB-110101-0002",
                                      lb="gansu-lb1")
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status == 200, body
    assert body["contractor"] == "李*", body
    status, _ = public_request(province, "GET", "/query/contracts/NO-SUCH", lb="gansu-lb1")
    assert status == 404
