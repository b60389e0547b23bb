"""A province made by `opsctl site new` comes up in a second lab beside the reference one,
converges unchanged, and its own query service answers a lookup."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from labdata import extract, public_request, summary

from opsctl.apply.runner import ApplyRequest, apply
from opsctl.lab import lifecycle
from opsctl.site import load_site
from opsctl.site.new import new_site

# Clear of the reference site, the mini test site and the ranges developers' copies use.
PROVINCE_BASE = "172.31.200.0/22"


@pytest.fixture(scope="module")
def province(tmp_path_factory, reference):
    if Path("/run/netns/opsctl-gansu-fw").exists():
        pytest.exit("a gansu lab is already up; take it down first", returncode=2)
    made = new_site("gansu", cidr_base=PROVINCE_BASE,
                    inventory_root=tmp_path_factory.mktemp("inventory"))
    site = load_site(made.directory)
    try:
        yield site
    finally:
        lifecycle.down(site.name, site)


def test_a_province_comes_up_beside_the_reference_and_converges(province, reference):
    national, _ = reference
    lifecycle.up(province)
    # The AIDE baseline (a whole-filesystem scan per host) is what the hardening tests prove
    # on the reference lab; here it would only double the suite's time.
    run = apply(province, ApplyRequest(skip_tags=("hardening-aide",)))
    assert run.result == "ok", run.failures
    assert sorted(run.hosts) == sorted(f"gansu-{h}" for h in national.hosts)
    for one in (province, national):
        assert all(h.ssh for h in lifecycle.status(one)), one.name
    wrong = [r.as_dict() for r in lifecycle.check_flows(province) if not r.ok]
    assert not wrong, wrong[:5]


def test_the_province_query_service_answers_a_lookup(province):
    """Its own data path end to end: the extract on its primary, then a lookup from its
    `public` namespace through its lb1 to its query service, reading its replica."""
    code, out = extract(province, "gansu-db1")
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
