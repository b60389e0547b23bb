"""Lab life on a two-host site: up is idempotent, ssh and status work, down leaves nothing,
and a lab whose `up` was killed half-way is torn down just as cleanly."""

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
    assert sorted(result.booted + result.already_running) == ["data1", "web1"]
    status = {h.name: h for h in lifecycle.status(mini_site)}
    for host in ("web1", "data1"):
        assert status[host].container == "running"
        assert status[host].ssh
        assert status[host].systemd in ("running", "degraded")


def test_second_up_changes_nothing(mini_site):
    before = json.loads((lab_dir(mini_site.name) / "lab.json").read_text())
    result = lifecycle.up(mini_site)
    assert result.booted == []
    assert sorted(result.already_running) == ["data1", "web1"]
    after = json.loads((lab_dir(mini_site.name) / "lab.json").read_text())
    assert after == before  # same containers, same mirror server


def test_lab_ssh_runs_a_command_and_returns_its_exit_code(mini_site):
    site = str(mini_site.directory)
    done = opsctl("lab", "ssh", "--site", site, "data1", "--", "hostname")
    assert done.returncode == 0 and done.stdout.strip() == "data1"
    done = opsctl("lab", "ssh", "--site", site, "web1", "--", "sh", "-c", "exit 7")
    assert done.returncode == 7


def test_lab_ssh_to_an_unknown_host_is_a_clear_error(mini_site):
    done = opsctl("lab", "ssh", "--site", str(mini_site.directory), "nohost", "--", "true")
    assert done.returncode == 2
    assert "no host 'nohost'" in done.stderr and "Traceback" not in done.stderr


def test_hosts_reach_the_mirror_and_nothing_outside_the_lab(mini_site):
    code, _ = lifecycle.ssh.remote(mini_site, "web1", [
        "python3", "-c", "import urllib.request as u; u.urlopen('http://172.31.110.1:3142/', "
        "timeout=5)"])
    assert code == 0
    # The lab has no way out: the router knows only the lab's own zones.
    code, _ = lifecycle.ssh.remote(mini_site, "web1", [
        "python3", "-c", "import socket; socket.create_connection(('192.0.2.1', 80), timeout=2)"])
    assert code != 0


def test_apply_bootstraps_python3_on_a_host_without_it(mini_site):
    """A province's minimal Debian may lack python3: the first play installs it from the
    offline mirror with raw commands (as ops, through sudo), once; a second run does nothing."""
    built = opsctl("mirror", "build", timeout=1800)  # cached: the suite built it already
    assert built.returncode == 0, built.stderr[-2000:]
    code, out = lifecycle.ssh.remote(mini_site, "web1", [
        "sh", "-c", "DEBIAN_FRONTEND=noninteractive apt-get purge -y -q python3-minimal"],
        timeout=300)
    assert code == 0, out
    code, _ = lifecycle.ssh.remote(mini_site, "web1", ["sh", "-c", "command -v python3"])
    assert code != 0
    where = ("--site", str(mini_site.directory), "--tags", "base-bootstrap", "-o", "json")
    done = opsctl("apply", *where, timeout=900)
    record = json.loads(done.stdout)
    assert done.returncode == 0 and record["result"] == "ok", done.stderr[-2000:]
    assert {h: t["changed"] for h, t in record["hosts"].items()} == {"web1": 1, "data1": 0}
    code, out = lifecycle.ssh.remote(mini_site, "web1", ["python3", "-c", "print(6 * 7)"])
    assert (code, out) == (0, "42")
    again = json.loads(opsctl("apply", *where, timeout=900).stdout)
    assert {h: t["changed"] for h, t in again["hosts"].items()} == {"web1": 0, "data1": 0}


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
