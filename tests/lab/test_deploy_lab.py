"""Rolling deploys on the reference lab under load (the `reference` session fixture: its
first converge installs the balancer and query-service 1.0.0 on both app hosts).

A bounded load client in the `public` namespace sends HTTPS requests through lb1 to
query-service's /version for the whole of each deploy; not one may fail. Bad input is refused
with exit 2 before anything changes.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from opsctl import audit
from opsctl.apply import history
from opsctl.deploy import engine
from opsctl.lab import lifecycle
from opsctl.lab.plan import plan_lab
from opsctl.pki import pki_dir

LOADGEN = Path(__file__).resolve().parent / "loadgen.py"


def opsctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "opsctl", *args], capture_output=True,
                          text=True, check=False, timeout=900)


class Load:
    """The load client running in `public` until stopped (or its count / time bound)."""

    def __init__(self, site, count: int = 200_000, seconds: float = 240, threads: int = 4,
                 ca: Path | None = None, follow_ca: bool = False, lb: str = "lb1"):
        """`ca`: the site CA unless told; `follow_ca`: read it again when it changes."""
        tmp = Path(tempfile.mkdtemp(prefix="opsctl-load-"))
        self.stop_file, self.out = tmp / "stop", tmp / "out.json"
        netns = plan_lab(site).node("public").netns
        url = f"https://{site.hosts[lb].address}/query/version"
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, "python3", str(LOADGEN), url,
             "--ca", str(ca or pki_dir(site.name) / "ca.crt"), "--count", str(count),
             "--seconds", str(seconds), "--threads", str(threads),
             "--stop-file", str(self.stop_file), "--out", str(self.out),
             *(["--follow-ca"] if follow_ca else [])])

    def stop(self) -> dict:
        self.stop_file.touch()
        self.proc.wait(timeout=60)
        return json.loads(self.out.read_text())


def current_versions(site) -> dict[str, str | None]:
    return {r.host: r.current for r in engine.releases(site, "query-service")}


def test_first_converge_installed_the_site_version_behind_the_balancer(reference):
    site, _ = reference
    assert current_versions(site) == {"app1": "1.0.0", "app2": "1.0.0"}
    load = Load(site, count=200, seconds=60, threads=2)
    load.proc.wait(timeout=90)
    result = json.loads(load.out.read_text())
    assert result["failed"] == 0, result["failures"]
    assert result["versions"] == {"1.0.0": 200}


def test_rolling_deploy_under_load_drops_no_request(reference):
    site, _ = reference
    load = Load(site)
    time.sleep(2)
    done = opsctl("deploy", "query-service", "1.1.0", "--site", str(site.directory),
                  "-o", "json")
    time.sleep(2)
    result = load.stop()
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    record = json.loads(done.stdout)
    print(f"rolling deploy: {result['requests']} requests, {result['failed']} failed, "
          f"versions {result['versions']}, deploy {record['seconds']}s")
    assert result["failed"] == 0, result["failures"]
    assert result["requests"] >= 300
    assert set(result["versions"]) == {"1.0.0", "1.1.0"}  # the stream saw the switch
    assert current_versions(site) == {"app1": "1.1.0", "app2": "1.1.0"}
    steps = [(s["host"], s["step"]) for s in record["steps"]]
    assert steps.index(("app1", "restored to the balancer")) < steps.index(("app2", "drained"))
    assert history.resolve(record["id"]).result == "ok"
    last = audit.records()[-1]
    assert (last["action"], last["args"]["run"]) == ("deploy", record["id"])
    assert audit.verify().ok


def test_broken_release_rolls_back_on_the_first_host_and_leaves_the_second(reference):
    site, _ = reference
    load = Load(site)
    time.sleep(2)
    done = opsctl("deploy", "query-service", "9.9.9-broken", "--site", str(site.directory),
                  "--health-timeout", "8", "-o", "json")
    time.sleep(2)
    result = load.stop()
    print(f"broken deploy: {result['requests']} requests, {result['failed']} failed")
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    record = json.loads(done.stdout)
    assert record["result"] == "failed"
    assert "app1: 9.9.9-broken failed its health check" in record["failures"][0]["message"]
    assert list(record["hosts"]) == ["app1"]  # app2 never touched
    assert result["failed"] == 0, result["failures"]
    assert result["versions"] == {"1.1.0": result["ok"]}  # the broken one never served
    found = {r.host: r for r in engine.releases(site, "query-service")}
    assert (found["app1"].current, found["app1"].previous) == ("1.1.0", "1.0.0")
    assert "9.9.9-broken" not in found["app2"].releases
    assert found["app1"].active and found["app2"].active


def test_releases_rollback_and_already_running(reference):
    site, _ = reference
    done = opsctl("deploy", "query-service", "1.1.0", "--site", str(site.directory))
    assert done.returncode == 2
    assert "already running on every host" in done.stderr
    done = opsctl("rollback", "query-service", "--site", str(site.directory))
    assert done.returncode == 0, done.stderr
    assert current_versions(site) == {"app1": "1.0.0", "app2": "1.0.0"}
    done = opsctl("releases", "query-service", "--site", str(site.directory), "-o", "json")
    assert {r["host"]: r["previous"] for r in json.loads(done.stdout)} == {
        "app1": "1.1.0", "app2": "1.1.0"}


def test_a_host_down_refuses_the_deploy_and_changes_nothing(reference):
    site, _ = reference
    before = current_versions(site)
    runs = len(history.all_runs(site.name))
    assert lifecycle.stop_host(site.name, "app2")
    try:
        done = opsctl("deploy", "query-service", "1.1.0", "--site", str(site.directory))
        assert done.returncode == 2, done.stderr
        # one line, naming the host and why (no answer: unreachable, or the connect timed out)
        [line] = done.stderr.strip().splitlines()[-1:]
        assert re.search(r"app2: (unreachable over SSH|no answer within)", line), line
        assert "nothing was changed" in line
        assert len(history.all_runs(site.name)) == runs
    finally:
        lifecycle.up(site)
    assert current_versions(site) == before


@pytest.mark.parametrize("args", [["billing", "1.0.0"], ["query-service", "7.0.0"]])
def test_unknown_component_or_release_is_refused(reference, args):
    site, _ = reference
    done = opsctl("deploy", *args, "--site", str(site.directory))
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_deploy_refuses_while_a_dependency_is_down_and_changes_nothing(reference):
    """access-gateway depends_on query-service: with query-service stopped on app2, a deploy
    of access-gateway is refused (exit 2, one line) before any host is touched."""
    site, _ = reference
    transport = engine.for_site(site)
    runs = len(history.all_runs(site.name))
    assert transport.run("app2", ["systemctl", "stop", "query-service.service"],
                         timeout=60).rc == 0
    try:
        done = opsctl("deploy", "access-gateway", "1.0.0", "--site", str(site.directory))
        assert done.returncode == 2, done.stdout + done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, lines
        assert "depends on query-service" in lines[0] and "query-service on app2" in lines[0]
        assert len(history.all_runs(site.name)) == runs
    finally:
        assert transport.run("app2", ["systemctl", "start", "query-service.service"],
                             timeout=60).rc == 0
    assert {r.host: r.active for r in engine.releases(site, "query-service")} == {
        "app1": True, "app2": True}
