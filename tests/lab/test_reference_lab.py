"""The reference deployment end to end: 7 hosts up, converged, idempotent, the flow matrix
enforced by the boundary router and the host firewalls, a failed host handled, down clean.

One lab for the session (the `reference` fixture): brought up and converged once.
The unreachable-host test stops a host and brings it back; `down` runs last of all.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from opsctl import audit
from opsctl.apply.runner import ApplyRequest, apply
from opsctl.lab import lifecycle, net
from opsctl.lab.state import lab_dir

HOSTS = ["app1", "app2", "bak1", "db1", "db2", "lb1", "mon1"]


def opsctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "opsctl", *args], capture_output=True,
                          text=True, check=False, timeout=900)


def on(site, host: str, *command: str) -> tuple[int, str]:
    return lifecycle.ssh.remote(site, host, list(command), timeout=120)


def test_first_apply_converges_all_seven_hosts(reference):
    _, first = reference
    assert sorted(first.hosts) == HOSTS
    assert first.result == "ok", first.failures
    assert all(t["status"] in ("ok", "changed") for t in first.hosts.values())
    assert first.changed > 0


def test_second_apply_changes_nothing_on_any_host(reference):
    site, first = reference
    second = apply(site, ApplyRequest())
    print(f"\nfirst apply {first.seconds} s, second apply {second.seconds} s")
    assert second.result == "ok", second.failures
    assert {h: t["changed"] for h, t in second.hosts.items()} == {h: 0 for h in HOSTS}


# What a person may change by hand on one host, each kind of state the roles own: the firewall
# rules in force (a port opened with nft), a managed file, a package, a service.
DRIFT = {
    "Load the host firewall when its file or its running rules changed": [
        "nft", "insert", "rule", "inet", "opsctl_host", "input", "tcp", "dport", "4444",
        "accept"],
    "Log idle shells out and keep the timeout readonly; restrictive umask": [
        "sh", "-c", "echo TMOUT=0 > /etc/profile.d/opsctl-hardening.sh"],
    "Install the hardening packages": [
        "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "remove", "-y", "-q",
        "libpam-pwquality"],
    "Run chrony": ["systemctl", "disable", "--now", "chrony"],
    # code the roles ship as one archive: `tar --diff` on the unpacked tree, not the archive's
    # checksum, must see it
    "Install the agent's code": [
        "sh", "-c", "echo '# edited by hand' >> /opt/opsctl-monitor/monitor/agent.py"],
}
# What the repairs above notify, and nothing more.
DRIFT_HANDLERS = ["Restart the monitoring agent"]
# Not a kernel parameter: inside the lab's containers even net.* refuse `sysctl -w` (permission
# denied: the network namespace belongs to the control node's user namespace), so the lab can
# neither make that drift nor repair it.


def test_an_apply_repairs_drift_by_hand_and_changes_nothing_else(reference):
    """A no-change apply must still see and undo what was changed behind its back, the rules in
    force included (a template task alone sees only the file), and touch nothing else."""
    site, _ = reference
    events = []
    try:
        for command in DRIFT.values():
            code, out = on(site, "app1", *command)
            assert code == 0, (command, out)
    finally:  # whatever drift was made is repaired before the next test, even on a failure
        repair = apply(site, ApplyRequest(limit=("app1",)), on_event=events.append)
    assert repair.result == "ok", repair.failures
    changed = sorted(e.task for e in events if e.status == "changed")
    assert changed == sorted([*DRIFT, *DRIFT_HANDLERS]), changed

    code, rules = on(site, "app1", "nft", "-s", "list", "table", "inet", "opsctl_host")
    assert code == 0 and "4444" not in rules, rules
    code, out = on(site, "app1", "grep", "-c", "TMOUT=600", "/etc/profile.d/opsctl-hardening.sh")
    assert code == 0, out
    code, out = on(site, "app1", "grep", "-E", "^password.*pam_pwquality",
                   "/etc/pam.d/common-password")
    assert code == 0, out  # the package back, and its PAM profile with it
    code, out = on(site, "app1", "systemctl", "is-enabled", "chrony")
    assert (code, out) == (0, "enabled")
    code, out = on(site, "app1", "systemctl", "is-active", "chrony")
    assert (code, out) == (0, "active")
    code, out = on(site, "app1", "grep", "-c", "edited by hand",
                   "/opt/opsctl-monitor/monitor/agent.py")
    assert code == 1, out

    again = apply(site, ApplyRequest(limit=("app1",)))
    assert again.result == "ok" and again.hosts["app1"]["changed"] == 0, again.hosts


def _init_cgroup(nspawn_pid: int) -> str:
    """The container's systemd's path in systemd's hierarchy, as the control node sees it."""
    [init] = Path(f"/proc/{nspawn_pid}/task/{nspawn_pid}/children").read_text().split()
    cgroup = Path(f"/proc/{init}/cgroup").read_text()
    return next(line.split(":", 2)[2] for line in cgroup.splitlines()
                if line.split(":")[1] in ("name=systemd", ""))


def test_each_host_has_cgroups_of_its_own_so_a_unit_starts_on_all_at_once(reference):
    """An apply starts the same service on every host at once. Containers that shared one
    cgroup tree raced on each unit's cgroup: a start failed with 219/CGROUP, or a unit found
    another host's processes in its cgroup and hung (opsctl.lab.cgroups)."""
    site, _ = reference
    plan = lifecycle.LabState.load(lab_dir(site.name)).plan
    pids = lifecycle.LabState.load(lab_dir(site.name)).pids
    paths = {host: _init_cgroup(pids[host]) for host in HOSTS}
    assert len(set(paths.values())) == len(HOSTS), paths
    for host, path in paths.items():
        assert path.startswith(f"/opsctl-lab/{plan.node(host).machine}/"), (host, path)

    def start(host: str, unit: str) -> tuple[int, str]:
        return on(site, host, "systemd-run", "--quiet", "--wait", f"--unit={unit}", "true")

    with ThreadPoolExecutor(len(HOSTS)) as pool:
        for round_ in range(10):
            unit = f"opsctl-cgroup-probe-{round_}"
            done = dict(zip(HOSTS, pool.map(start, HOSTS, [unit] * len(HOSTS)), strict=True))
            assert {h: r for h, r in done.items() if r[0] != 0} == {}, unit


def test_hosts_install_from_the_offline_mirror_only(reference):
    site, _ = reference
    code, out = on(site, "db2", "apt-get", "-q", "update")
    assert code == 0, out
    assert f"http://{site.control_address}:{site.mirror_port}" in out
    assert "deb.debian.org" not in out
    code, out = on(site, "db2", "apt-cache", "policy", "chrony")
    assert code == 0 and f"{site.control_address}:{site.mirror_port}" in out


def probe_index(results) -> dict[tuple[str, str, int], bool]:
    return {(r.probe.source.name, r.probe.destination.name, r.probe.port): r.connected
            for r in results}


def test_the_flow_matrix_holds_between_and_within_zones(reference):
    site, _ = reference
    results = lifecycle.check_flows(site)
    wrong = [r.as_dict() for r in results if not r.ok]
    assert not wrong, json.dumps(wrong[:10], indent=1)
    seen = probe_index(results)
    for allowed in [("public", "lb1", 443), ("app1", "db1", 5432), ("db1", "db2", 5432),
                    ("db1", "bak1", 2222), ("control", "db2", 2222), ("control", "app2", 9110),
                    ("db1", "control", 3142), ("lb1", "control", 3142)]:
        assert seen[allowed] is True, allowed
    # sshd listens on the site's port, 2222, as a province may set it
    for forbidden in [("public", "db1", 5432), ("app1", "mon1", 2222), ("lb1", "db1", 5432),
                      ("lb1", "control", 2222), ("app1", "control", 9110),
                      ("db2", "control", 443), ("public", "mon1", 9110),
                      ("app1", "app2", 2222), ("db1", "lb1", 443)]:
        assert seen[forbidden] is False, forbidden


def test_the_router_counts_what_it_drops(reference):
    site, _ = reference
    plan = lifecycle.LabState.load(lab_dir(site.name)).plan
    before = net.drop_counters(plan)["packets"]
    public = plan.node("public")
    db1 = site.hosts["db1"].address
    subprocess.run(["ip", "netns", "exec", public.netns, sys.executable, "-c",
                    f"import socket\ntry: socket.create_connection(('{db1}', 5432), 1)\n"
                    "except OSError: pass"], check=False, timeout=30)
    assert net.drop_counters(plan)["packets"] > before


def test_every_host_runs_the_monitoring_agent_reachable_from_mgmt(reference, scrape_agent):
    site, _ = reference
    for host in HOSTS:
        body = scrape_agent(site, host)
        assert "opsctl_host_memory_available_bytes" in body, host
        assert 'opsctl_systemd_unit_state{state="active",unit="ssh.service"} 1.0' in body, host
        assert 'opsctl_tls_certificate_readable{path="/etc/opsctl/pki/host.crt"} 1.0' in body


def test_the_agent_speaks_only_tls_and_only_to_the_scrape_credential(reference, scrape_agent):
    site, _ = reference
    address = site.hosts["app1"].address
    # Plain HTTP meets a TLS server: the connection fails, no metrics come back.
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://{address}:{site.agent_port}/metrics", timeout=5)
    with pytest.raises(urllib.error.HTTPError) as refused:
        scrape_agent(site, "app1", password="not-the-password")
    assert refused.value.code == 401


def test_the_agent_is_unprivileged_and_comes_back_when_killed(reference, scrape_agent):
    site, _ = reference
    code, user = on(site, "db1", "systemctl", "show", "-p", "User", "--value",
                    "opsctl-monitor.service")
    assert code == 0 and user == "opsctl-monitor"
    code, pid = on(site, "db1", "systemctl", "show", "-p", "MainPID", "--value",
                   "opsctl-monitor.service")
    assert code == 0 and int(pid) > 0
    assert on(site, "db1", "kill", "-9", pid)[0] == 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        code, new_pid = on(site, "db1", "systemctl", "show", "-p", "MainPID", "--value",
                           "opsctl-monitor.service")
        if code == 0 and new_pid not in ("0", pid):
            try:
                if "opsctl_host_load1" in scrape_agent(site, "db1"):
                    return
            except OSError:
                pass
        time.sleep(0.5)
    pytest.fail("the agent did not come back within 20 s")


def test_two_labs_run_side_by_side(reference, mini_site):
    site, _ = reference
    lifecycle.up(mini_site)
    for one in (site, mini_site):
        status = lifecycle.status(one)
        assert status and all(h.ssh for h in status), one.name


def test_an_unreachable_host_fails_the_run_and_the_others_converge(reference):
    site, _ = reference
    assert lifecycle.stop_host(site.name, "app2")
    try:
        # Three hosts of three roles' sets, not seven: the full site's no-change apply is
        # test_second_apply_changes_nothing_on_any_host's, and a dead host fails the same way.
        done = opsctl("apply", "--site", str(site.directory), "--limit", "app1,app2,lb1",
                      "-o", "json")
    finally:  # app2 back for every later test, whatever the run did
        lifecycle.up(site)
    assert done.returncode == 1, done.stderr
    record = json.loads(done.stdout)
    assert record["hosts"]["app2"]["status"] == "unreachable"
    others = {h: t["status"] for h, t in record["hosts"].items() if h != "app2"}
    assert others == {"app1": "ok", "lb1": "ok"}

    done = opsctl("apply", "--site", str(site.directory), "--retry-failed", "-o", "json")
    assert done.returncode == 0, done.stderr
    retried = json.loads(done.stdout)
    assert retried["request"]["limit"] == ["app2"]
    assert list(retried["hosts"]) == ["app2"]
    assert retried["hosts"]["app2"]["status"] in ("ok", "changed")


def test_runs_and_audit_log_record_every_apply(reference):
    site, first = reference
    done = opsctl("runs", "--site", site.name, "-o", "json")
    assert done.returncode == 0
    runs = json.loads(done.stdout)
    ids = [r["id"] for r in runs]
    assert first.id in ids and runs[ids.index(first.id)]["result"] == "ok"
    failed = [r for r in runs if r["hosts"].get("app2", {}).get("status") == "unreachable"]
    assert failed, "the run with app2 down is recorded"
    after = runs[ids.index(failed[-1]["id"]) + 1:]
    assert any(r["request"]["retry_failed"] and r["result"] == "ok" for r in after)
    applies = {r["args"].get("run") for r in audit.records() if r["action"] == "apply"}
    assert {first.id, failed[-1]["id"]} <= applies
    assert opsctl("audit", "verify").returncode == 0


@pytest.mark.lab_teardown
def test_down_leaves_nothing_behind(reference):
    site, _ = reference
    plan = lifecycle.LabState.load(lab_dir(site.name)).plan
    lifecycle.down(site.name, site)
    assert lifecycle.leftovers(plan) == []
    assert not lab_dir(site.name).exists()
