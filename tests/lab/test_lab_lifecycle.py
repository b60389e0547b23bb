"""Lab life on a three-host site: up is idempotent, ssh and status work, the site serves its
own offline mirror from ops1 (pushed, over TLS, bootstrapping a host without python3), down
leaves nothing, and a lab whose `up` was killed half-way is torn down just as cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from opsctl.lab import lifecycle
from opsctl.lab.plan import plan_lab
from opsctl.lab.state import lab_dir


def opsctl(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "opsctl", *args], capture_output=True,
                          text=True, check=False, **kwargs)


def test_up_boots_every_host(mini_site):
    result = lifecycle.up(mini_site)
    assert sorted(result.booted + result.already_running) == ["data1", "ops1", "web1"]
    status = {h.name: h for h in lifecycle.status(mini_site)}
    for host in ("ops1", "web1", "data1"):
        assert status[host].container == "running"
        assert status[host].ssh
        assert status[host].systemd in ("running", "degraded")


def test_second_up_changes_nothing(mini_site):
    before = json.loads((lab_dir(mini_site.name) / "lab.json").read_text())
    result = lifecycle.up(mini_site)
    assert result.booted == []
    assert sorted(result.already_running) == ["data1", "ops1", "web1"]
    after = json.loads((lab_dir(mini_site.name) / "lab.json").read_text())
    assert after == before  # same containers (and no mirror server: ops1 serves it)


def test_lab_ssh_runs_a_command_and_returns_its_exit_code(mini_site):
    site = str(mini_site.directory)
    done = opsctl("lab", "ssh", "--site", site, "data1", "--", "hostname")
    assert done.returncode == 0 and done.stdout.strip() == "data1"
    done = opsctl("lab", "ssh", "--site", site, "web1", "--", "sh", "-c", "exit 7")
    assert done.returncode == 7


def test_lab_ssh_to_an_unknown_host_is_a_clear_error(mini_site):
    done = opsctl("lab", "ssh", "--site", str(mini_site.directory), "nohost", "--", "true")
    assert done.returncode == 2
    assert "HOST: nohost: no such host in site" in done.stderr
    assert "Traceback" not in done.stderr


def test_nothing_outside_the_lab_and_no_mirror_from_the_control_node(mini_site):
    # The lab has no way out: the router knows only the lab's own zones.
    code, _ = lifecycle.ssh.remote(mini_site, "web1", [
        "python3", "-c", "import socket; socket.create_connection(('192.0.2.1', 80), timeout=2)"])
    assert code != 0
    # The site's mirror is ops1's: the control node serves none, and no flow reaches it.
    assert json.loads((lab_dir(mini_site.name) / "lab.json").read_text())["mirror_pid"] is None
    code, _ = lifecycle.ssh.remote(mini_site, "web1", [
        "python3", "-c", "import socket; socket.create_connection(('172.31.110.1', 3142), "
        "timeout=2)"])
    assert code != 0


def changes(record: dict) -> dict[str, int]:
    return {h: t["changed"] for h, t in record["hosts"].items()}


def test_the_site_serves_its_own_mirror_over_tls(mini_site, tmp_path):
    """A province's mirror: `mirror push` fills ops1 through the transport (as ops, through
    sudo) though ops1 has no python3, the mirror_server play installs python3 there from the
    pushed directory and serves it over TLS with ops1's site certificate, and the other
    hosts' apt checks that certificate against the site CA."""
    site = str(mini_site.directory)
    built = opsctl("mirror", "build", timeout=1800)  # cached: the suite built it already
    assert built.returncode == 0, built.stderr[-2000:]
    code, out = lifecycle.ssh.remote(mini_site, "ops1", [
        "sh", "-c", "DEBIAN_FRONTEND=noninteractive apt-get purge -y -q python3-minimal"],
        timeout=300)
    assert code == 0, out
    pushed = opsctl("mirror", "push", "--site", site, "-o", "json", timeout=1800)
    assert pushed.returncode == 0, pushed.stderr[-2000:]
    assert json.loads(pushed.stdout)["sent"] > 0
    again = opsctl("mirror", "push", "--site", site, "-o", "json", timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout)["sent"] == 0  # only what changed is sent

    where = ("--site", site, "--tags", "mirror_server", "-o", "json")
    served = opsctl("apply", *where, timeout=900)
    assert served.returncode == 0, served.stderr[-2000:]
    assert changes(json.loads(served.stdout))["ops1"] > 0
    code, out = lifecycle.ssh.remote(mini_site, "ops1", ["python3", "-c", "print(6 * 7)"])
    assert (code, out) == (0, "42")
    # The mirror host is scanned like any other: its web server passes the TLS checks.
    out = tmp_path / "scan"
    scanned = opsctl("check", "--site", site, "--limit", "ops1", "--no-probes", "--format",
                     "json", "--out", str(out), timeout=600)
    assert scanned.returncode in (0, 1), scanned.stderr[-2000:]
    [target] = json.loads(next(out.glob("*.json")).read_text())["targets"]
    verdicts = {c["id"]: c["status"] for c in target["checks"]}
    assert verdicts["nginx_tls_enabled"] == "pass" and verdicts["nginx_tls_protocols"] == "pass"
    assert changes(json.loads(opsctl("apply", *where, timeout=900).stdout))["ops1"] == 0

    # TLS only, and the certificate is ops1's from the site CA: plain HTTP gets no answer,
    # apt with the base role's settings updates, and apt trusting another CA refuses.
    code, out = lifecycle.ssh.remote(mini_site, "web1", [
        "python3", "-c", "import urllib.request as u; "
        "u.urlopen('http://172.31.110.11:3142/InRelease', timeout=5)"])
    assert code != 0, out
    where = ("--site", site, "--limit", "web1", "--tags", "base-apt", "-o", "json")
    pointed = opsctl("apply", *where, timeout=900)
    assert pointed.returncode == 0, pointed.stderr[-2000:]
    assert changes(json.loads(pointed.stdout))["web1"] > 0
    assert changes(json.loads(opsctl("apply", *where, timeout=900).stdout))["web1"] == 0
    code, out = lifecycle.ssh.remote(mini_site, "web1", [
        "apt-get", "-q", "update"], timeout=300)
    assert code == 0, out
    assert "https://172.31.110.11:3142" in out
    # Another CA (made here) in CaInfo, and a lists directory of its own for web1's to stay.
    other = tmp_path / "other-ca.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(tmp_path / "k"),
                    "-subj", "/CN=not the site CA", "-days", "1", "-out", str(other)],
                   check=True, capture_output=True, timeout=60)
    lists = "/tmp/opsctl-other-ca"
    done = lifecycle.ssh.transport(mini_site).run(
        "web1", ["sh", "-c", f"mkdir -p {lists}/partial && cat > {lists}/ca.crt && apt-get -q "
                 f"-o Acquire::https::172.31.110.11::CaInfo={lists}/ca.crt "
                 f"-o Dir::State::Lists={lists} update 2>&1; rm -rf {lists}"],
        stdin=other.read_text(), timeout=300)
    assert "Certificate verification failed" in done.stdout, done.stdout + done.stderr


def test_apply_bootstraps_python3_on_a_host_without_it(mini_site):
    """A province's minimal Debian may lack python3: the first play installs it from the
    site's own mirror (ops1, over TLS against the site CA) with raw commands (as ops, through
    sudo), once; a second run does nothing."""
    code, out = lifecycle.ssh.remote(mini_site, "web1", [
        "sh", "-c", "DEBIAN_FRONTEND=noninteractive apt-get purge -y -q python3-minimal"
        " && rm -f /etc/apt/sources.list.d/opsctl-mirror.sources /etc/apt/opsctl-mirror-ca.crt"
        " /etc/apt/apt.conf.d/60opsctl-mirror-tls"], timeout=300)
    assert code == 0, out
    code, _ = lifecycle.ssh.remote(mini_site, "web1", ["sh", "-c", "command -v python3"])
    assert code != 0
    where = ("--site", str(mini_site.directory), "--tags", "base-bootstrap", "-o", "json")
    done = opsctl("apply", *where, timeout=900)
    record = json.loads(done.stdout)
    assert done.returncode == 0 and record["result"] == "ok", done.stderr[-2000:]
    assert changes(record) == {"ops1": 0, "web1": 1, "data1": 0}
    # python3-apt too: Ansible's apt module cannot install it from a source it is not given
    code, out = lifecycle.ssh.remote(mini_site, "web1", [
        "python3", "-c", "import apt_pkg; print(6 * 7)"])
    assert (code, out) == (0, "42")
    again = json.loads(opsctl("apply", *where, timeout=900).stdout)
    assert changes(again) == {"ops1": 0, "web1": 0, "data1": 0}


def test_down_leaves_nothing_behind(mini_site):
    plan = plan_lab(mini_site)
    lifecycle.down(mini_site.name, mini_site)
    assert lifecycle.leftovers(plan) == []
    assert not lab_dir(mini_site.name).exists()


def test_interrupted_up_is_torn_down_cleanly(mini_site):
    plan = plan_lab(mini_site)
    proc = subprocess.Popen([sys.executable, "-m", "opsctl", "lab", "up", "--site",
                             str(mini_site.directory)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    state = lab_dir(mini_site.name) / "lab.json"
    deadline = time.monotonic() + 60
    # Kill it once the first container is booting and before SSH answers.
    while time.monotonic() < deadline:
        if state.exists() and json.loads(state.read_text())["pids"]:
            break
        time.sleep(0.05)
    else:
        pytest.fail("lab up never started a container")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert lifecycle.leftovers(plan), "the interrupted up should have left something to remove"
    lifecycle.down(mini_site.name, mini_site)
    assert lifecycle.leftovers(plan) == []
