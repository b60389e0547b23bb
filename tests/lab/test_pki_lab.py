"""Certificates on the converged reference lab (issue 14 part 3): `pki status` lists every
host with what the control node issued; `pki rotate --limit lb1` under load gives lb1 a new
certificate that nginx presents without failing a request, and leaves the site converged.

Bounded: one status, one rotation of one host (about a minute), one status of lb1 and one
apply of lb1.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from test_deploy_lab import Load

from opsctl import audit
from opsctl.apply.runner import ApplyRequest, apply
from opsctl.pki import pki_dir
from opsctl.pki.certs import from_pem


def opsctl(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "opsctl", *args], capture_output=True,
                          text=True, check=False, timeout=timeout)


def _issued(site, host: str) -> str:
    return from_pem((pki_dir(site.name) / "hosts" / f"{host}.crt").read_text()).fingerprint


def test_pki_status_lists_every_host_as_issued(reference):
    site, _ = reference
    done = opsctl("pki", "status", "--site", str(site.directory), "-o", "json", timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    status = json.loads(done.stdout)
    assert status["healthy"] and status["problems"] == []
    assert {h["name"] for h in status["hosts"]} == set(site.hosts)
    for host in status["hosts"]:
        assert host["error"] is None, host
        assert all(f["matches"] for f in host["files"]), host["files"]
        assert all(p["matches"] for p in host["presented"]), host["presented"]
        own = next(f for f in host["files"] if f["kind"] == "host")
        assert own["deployed"]["fingerprint"] == _issued(site, host["name"])
        assert own["deployed"]["days_left"] > 30
    services = {(h["name"], p["service"]) for h in status["hosts"] for p in h["presented"]}
    assert {("lb1", "nginx (load balancer)"), ("db1", "PostgreSQL"),
            ("db1", "Patroni REST API"), ("db2", "etcd (clients)"),
            ("mon1", "rsyslog (log receiver)"), ("app1", "monitoring agent")} <= services


def test_rotating_the_balancer_under_load_fails_no_request(reference):
    site, _ = reference
    before = _issued(site, "lb1")
    others = {h: _issued(site, h) for h in site.hosts if h != "lb1"}
    load = Load(site, seconds=300)
    time.sleep(2)
    done = opsctl("pki", "rotate", "--site", str(site.directory), "--limit", "lb1", "-o", "json")
    time.sleep(2)
    result = load.stop()
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    rotation = json.loads(done.stdout)
    print(f"pki rotate lb1: {result['requests']} requests, {result['failed']} failed; "
          f"tags {rotation['plan']['tags']}")
    assert result["failed"] == 0, result["failures"]
    assert result["requests"] >= 50

    after = _issued(site, "lb1")
    assert after != before, "lb1 has a new certificate"
    assert {h: _issued(site, h) for h in others} == others, "no other host was reissued"
    (lb1,) = rotation["status"]["hosts"]
    nginx = next(p for p in lb1["presented"] if p["service"] == "nginx (load balancer)")
    assert nginx["cert"]["fingerprint"] == after
    assert rotation["ok"] and rotation["problems"] == []
    last = audit.records()[-1]
    assert (last["action"], last["args"]["hosts"]) == ("pki rotate", ["lb1"])

    # status still clean, from the outside too; and the site is converged: nothing to change
    done = opsctl("pki", "status", "--site", str(site.directory), "--limit", "lb1", "-o",
                  "json", timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    second = apply(site, ApplyRequest(limit=("lb1",)))
    assert second.result == "ok", second.failures
    assert second.hosts["lb1"]["changed"] == 0, second.hosts["lb1"]
