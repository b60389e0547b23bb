"""`opsctl patch` on the converged reference lab (root; shares the `reference` fixture).

- `patch --check` answers for every host in the plan's order, exit 0, and changes nothing;
- a tiny package built here with dpkg-deb, version 1 installed on every host the plan
  patches, version 2 published into the lab's mirror (the repository the lab serves,
  re-indexed and signed with the mirror's own key): `patch` under load drops no request,
  every host ends on version 2, the leader moved (switchover) and is moved back;
- a host that needs a reboot (`/run/reboot-required`, on an app host and the replica) is
  rebooted (`systemctl reboot`: the container restarts under its keeper, as a machine would)
  and must come back healthy before the next;
- refused while an alert fires (a stopped agent), nothing upgraded.

The mirror is restored (the package removed, the index re-signed) whatever happens.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pytest
from patchprobe import PROBE, build_deb, install, installed_version, publish, purge, withdraw
from test_deploy_lab import Load

from opsctl import audit
from opsctl.apply import history
from opsctl.mirror.build import mirror_dir, read_manifest
from opsctl.transport import for_site

PATCHED = ["app1", "app2", "db2", "db1", "bak1", "mon1"]  # the plan's order; lb1 left out


def opsctl(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "opsctl", *args], capture_output=True,
                          text=True, check=False, timeout=timeout)


@pytest.fixture
def published_probe(reference):
    """Version 1 installed on every host the plan patches; version 2 in the lab's mirror.
    Yields (site, transport); takes both back out afterwards."""
    site, _ = reference
    t = for_site(site)
    repo = mirror_dir()
    manifest = read_manifest(repo)
    tmp = Path(tempfile.mkdtemp(prefix="opsctl-patch-"))
    v1, v2 = build_deb(tmp, "1.0"), build_deb(tmp, "2.0")
    published = repo / v2.name
    try:
        for host in PATCHED:
            done = install(t, host, v1)
            assert done.rc == 0, f"{host}: {done.output}"
        publish(repo, v2)
        yield site, t
    finally:
        withdraw(repo, published)
        assert read_manifest(repo) == manifest  # `mirror build` still sees it as current
        for host in PATCHED:
            purge(t, host)


def test_check_answers_for_every_host_in_order_and_changes_nothing(reference):
    site, _ = reference
    before = len(audit.records())
    done = opsctl("patch", "--check", "--site", str(site.directory), "-o", "json")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["ok"] is True
    assert [h["host"] for h in report["hosts"]] == PATCHED
    assert all(h["error"] is None for h in report["hosts"])
    # the first converge took everything the mirror holds: a fresh site has nothing pending
    assert {h["host"]: h["changes"] for h in report["hosts"] if h["changes"]} == {}
    assert [o["host"] for o in report["plan"]["left_out"]] == ["lb1"]
    # It upgrades nothing, but it refreshed apt's lists on every host: one audit record.
    [record] = audit.records()[before:]
    assert record["action"] == "patch.check" and record["result"].startswith("ok: "), record


def test_patch_under_load_upgrades_every_host_and_drops_no_request(published_probe):
    site, t = published_probe
    check = json.loads(opsctl("patch", "--check", "--site", str(site.directory),
                              "-o", "json").stdout)
    for host in check["hosts"]:
        probe = [c for c in host["changes"] if c["package"] == PROBE]
        assert probe == [{"package": PROBE, "before": "1.0", "after": "2.0",
                          "origin": probe[0]["origin"], "cves": []}], host
    rebooting = ("app2", "db2")
    boots = {}
    for host in rebooting:
        assert t.run(host, ["touch", "/run/reboot-required"], timeout=30).rc == 0
        boots[host] = t.run(host, ["cat", "/proc/sys/kernel/random/boot_id"], timeout=30).stdout
    load = Load(site, seconds=900)
    time.sleep(2)
    done = opsctl("patch", "--site", str(site.directory), "-o", "json")
    time.sleep(2)
    result = load.stop()
    try:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        record = json.loads(done.stdout)
        print(f"patch: {result['requests']} requests, {result['failed']} failed, "
              f"{record['seconds']}s")
        assert result["failed"] == 0, result["failures"]
        assert {h: installed_version(t, h) for h in PATCHED} == {h: "2.0" for h in PATCHED}
        steps = [(s["host"], s["step"]) for s in record["steps"]]
        assert steps.index(("app1", "restored to the balancer")) < steps.index(("app2",
                                                                                "drained"))
        assert steps.index(("db2", "healthy")) < steps.index(("db1", "switchover")) < \
            steps.index(("db1", "upgraded"))
        for host in rebooting:  # rebooted, back, and healthy before the next host began
            assert steps.index((host, "rebooting")) < steps.index((host, "rebooted")) < \
                steps.index((host, "healthy")), steps
            after = t.run(host, ["cat", "/proc/sys/kernel/random/boot_id"], timeout=30).stdout
            assert after.strip() and after != boots[host], host
        assert {h for h, s in steps if s == "rebooting"} == set(rebooting)  # only those
        assert history.resolve(record["id"]).result == "ok"
        assert audit.records()[-1]["action"] == "patch" and audit.verify().ok
    finally:
        # the leader moved to db2: give it back for the tests that expect db1 to lead
        opsctl("db", "switchover", "--to", "db1", "--site", str(site.directory))


def test_patch_refuses_while_an_alert_fires_and_upgrades_nothing(published_probe):
    site, t = published_probe
    before = opsctl("status", "--site", str(site.directory), "-o", "json")
    if before.returncode != 0:  # the refusal below would not be app2's alone
        warnings.warn(f"the site was not green before the agent stopped: {problems(before)}",
                      stacklevel=1)
    t.run("app2", ["systemctl", "stop", "opsctl-monitor.service"], timeout=30)
    try:
        # until `opsctl status` sees it (a scrape, then the alert's `for`)
        deadline = time.monotonic() + 300
        while opsctl("status", "--site", str(site.directory)).returncode == 0:
            assert time.monotonic() < deadline, "the stopped agent never made the site red"
            time.sleep(10)
        done = opsctl("patch", "--site", str(site.directory))
        assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
        assert "not healthy" in done.stderr and "app2" in done.stderr
        assert {h: installed_version(t, h) for h in PATCHED} == {h: "1.0" for h in PATCHED}
        assert audit.records()[-1]["result"].startswith("refused: ")
    finally:
        t.run("app2", ["systemctl", "start", "opsctl-monitor.service"], timeout=30)
        deadline = time.monotonic() + 300
        while (last := opsctl("status", "--site", str(site.directory), "-o", "json")
               ).returncode != 0 and time.monotonic() < deadline:
            time.sleep(10)
        if last.returncode != 0:
            # Seen once in a full run (the wait ran out): say why, for the tests after this.
            warnings.warn(f"the site was still not green 300 s after app2's agent started: "
                          f"{problems(last)}", stacklevel=1)


def problems(done) -> list[str]:
    """What `opsctl status -o json` found wrong (its own words, as `patch` would name them)."""
    try:
        data = json.loads(done.stdout)
    except json.JSONDecodeError:
        return [done.stderr.strip()[-300:]]
    found = [f"host {h['name']}" for h in data.get("hosts", []) if not h.get("healthy")]
    found += [f"alert {a['name']} on {a.get('host')}" for a in data.get("alerts", [])]
    found += [f"job {j['job']} on {j['host']}" for j in data.get("failing_jobs", [])]
    found += [f"replica {r['name']}" for r in data.get("replicas", []) if not r.get("healthy")]
    found += [f"backup on {b['host']}" for b in data.get("backups", []) if not b.get("healthy")]
    return found
