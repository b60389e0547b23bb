"""The reference lab reached as a province reaches its own machines: a site directory with a
connection section and no lab files (via ssh), the login user `ops` with a sudo password,
every host behind the bastion mon1, host keys pinned by `opsctl site trust`.

It shares the converged reference lab and leaves it as it found it: `harden --check` is a dry
run and the apply through the bastion runs one role's tags (the lab's own converge is the
whole apply as ops with its sudo password, root's login refused: test_reference_lab and
test_hardening_lab); the faults it makes (a falsified pin, another sudo password on app1)
are undone before each test ends.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from opsctl.connection import resolve
from opsctl.hostkeys import fingerprint, pinned
from opsctl.lab.plan import plan_lab
from opsctl.lab.state import lab_dir
from opsctl.site import load_site
from opsctl.transport import for_site


def _opsctl(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "opsctl", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


def _scan(site, *limit: str) -> dict:
    """`opsctl check --site` (with its boundary probes unless limited), its JSON report."""
    out = Path(site.directory).parent / f"scan-{'-'.join(limit) or 'all'}"
    shutil.rmtree(out, ignore_errors=True)
    args = ["--limit", ",".join(limit)] if limit else []
    done = _opsctl("check", "--site", str(site.directory), *args, "--format", "json",
                   "--out", str(out))
    assert done.returncode in (0, 1), done.stderr
    return json.loads(next(out.glob("*.json")).read_text())


def _scan_errors(site, *limit: str) -> dict[str, str | None]:
    """Each host's scan error (None when it was scanned), from the JSON report."""
    return {t["name"]: t.get("error") for t in _scan(site, *limit)["targets"]
            if t["name"] in site.hosts}


ISOLATION = "opsctl_test_mgmt_only"


@pytest.fixture(scope="module")
def mgmt_only(reference):
    """The control node reaches the mgmt zone only, as on a province's network: the router
    drops every new connection from it into another zone while this module runs."""
    site, _first = reference
    router = plan_lab(site).router_netns
    mgmt = site.zones["mgmt"].cidr
    rules = (f"table inet {ISOLATION} {{\n chain forward {{\n"
             "  type filter hook forward priority -10; policy accept;\n"
             f"  ip saddr {site.control_address} ip daddr != {mgmt} ct state new counter drop\n"
             " }\n}\n")
    subprocess.run(["ip", "netns", "exec", router, "nft", "-f", "-"], input=rules, text=True,
                   check=True)
    try:
        yield
    finally:
        subprocess.run(["ip", "netns", "exec", router, "nft", "delete", "table", "inet",
                        ISOLATION], check=True)


@pytest.fixture(scope="module")
def real(reference, mgmt_only, tmp_path_factory):
    """A copy of the reference site that says how to reach it, and nothing of the lab's
    besides the key the base role authorised for ops."""
    site, _first = reference
    directory = tmp_path_factory.mktemp("real") / "site"
    shutil.copytree(site.directory, directory)
    site_file = directory / "group_vars" / "all" / "site.yml"
    data = yaml.safe_load(site_file.read_text())
    data["site"]["connection"] = {
        "user": "ops",
        "port": data["site"]["connection"]["port"],  # 2222, as the lab set sshd up
        "identity_file": str(lab_dir(site.name) / "ssh" / "id_ed25519"),
        # the admin's sudo password, which the hardening role keeps in the site's secrets
        "become": {"password": "secrets"},
        "jump": {"host": "mon1"},
        "known_hosts": str(directory / "known_hosts"),
    }
    site_file.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    done = _opsctl("site", "trust", str(directory), "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    return load_site(str(directory))


def test_trust_pins_every_key_through_the_bastion(real) -> None:
    # The lab's own connection goes straight to db1: refused while only mgmt is reachable.
    lab = resolve(real, "lab")
    direct = subprocess.run(["ssh", "-F", str(lab.ssh_config), "-o", "ControlPath=none",
                             "-o", "ConnectTimeout=3", "db1", "true"], capture_output=True,
                            timeout=30, check=False)
    assert direct.returncode == 255
    conn = resolve(real)
    assert conn.via == "ssh" and conn.directory != lab_dir(real.name)
    lab_keys = pinned(resolve(real, "lab"))
    keys = pinned(conn)
    assert set(keys) == set(real.hosts)
    for host in real.hosts:
        assert [k.key for k in keys[host]] == [k.key for k in lab_keys[host]]
    config = _opsctl("site", "ssh-config", str(real.directory)).stdout
    assert "ProxyJump mon1" in config and "User ops" in config


def test_check_status_db_status_and_dry_run_harden_through_the_bastion(real) -> None:
    scan = _scan(real)
    assert {t["name"]: t.get("error") for t in scan["targets"] if t["name"] in real.hosts} \
        == dict.fromkeys(real.hosts)
    # The boundary's verdicts rest on probes the hosts made, through the same bastion: the
    # report lists them, and what could not be probed from here (the internet's side) stays
    # an error naming why instead of a pass from the site model.
    probes = scan["probes"]
    assert probes["count"] > 100 and probes["unexpected"] == [], probes["unexpected"][:5]
    unmanaged = {z.name for z in real.zones.values() if not z.managed}
    assert set(probes["not_probed"]) == unmanaged | {"control"}
    [network] = [t for t in scan["targets"] if t["scope"] == "network"]
    verdict = {c["id"]: c for c in network["checks"]}
    for cid in ("net_boundary_default_deny", "net_probes_allowed_flows_work",
                "net_probes_no_unexpected_open", "net_ssh_only_from_mgmt",
                "net_mgmt_zone_isolated"):
        assert verdict[cid]["status"] == "pass", verdict[cid]
    public = verdict["net_public_reaches_only_lb"]
    assert public["status"] == "error" and "not probed from" in public["reason"], public
    status = _opsctl("db", "status", "--site", str(real.directory), "-o", "json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["leader"] in real.groups["db"]
    # status asks Prometheus and Alertmanager on mon1 itself, through the transport
    overview = _opsctl("status", "--site", str(real.directory), "-o", "json")
    assert overview.returncode in (0, 1), overview.stderr
    assert {h["name"] for h in json.loads(overview.stdout)["hosts"]} == set(real.hosts)
    harden = _opsctl("harden", "--site", str(real.directory), "--check", "-o", "json")
    record = json.loads(harden.stdout)
    assert record["result"] == "ok", harden.stderr[-2000:]
    assert set(record["hosts"]) == set(real.hosts)
    # The sudo password reached Ansible as a file lookup only: it is in no run's artifacts,
    # not in the audit log, and its copy for the run is gone.
    password = resolve(real).become_file.read_text().split(" salt=")[0].strip().encode()
    from opsctl.paths import state_dir

    leaked = [str(p) for p in (state_dir() / "runs").rglob("*") if p.is_file()
              and password in p.read_bytes()]
    assert leaked == []
    assert password not in (state_dir() / "audit.log").read_bytes()
    assert not list(resolve(real).directory.glob("become-*"))


def test_a_changed_key_is_refused_everywhere_until_replaced(real) -> None:
    conn = resolve(real)
    good = conn.known_hosts.read_text()
    other = pinned(conn)["mon1"][0]
    # As after a reinstall: app2 offers a key other than the pinned one (here, the pin is
    # what changed), and the connections made before are gone.
    conn.known_hosts.write_text("".join(
        f"app2 {other.type} {other.key}\n" if line.startswith("app2 ") else line + "\n"
        for line in good.splitlines()))
    subprocess.run(["ssh", "-F", str(conn.ssh_config), "-O", "exit", "app2"],
                   capture_output=True, check=False)
    try:
        expected = (f"app2: host key changed (pinned {fingerprint(other.key)}, offered "
                    f"{pinned(resolve(real, 'lab'))['app2'][0].fingerprint})")
        harden = _opsctl("harden", "--site", str(real.directory), "--check")
        assert harden.returncode == 1
        lines = harden.stderr.strip().splitlines()
        assert lines[-1] == (f"opsctl: {expected}; nothing was done on it. If it was "
                             f"reinstalled: opsctl site trust {real.name} --replace app2")
        assert not any("changed" in line for line in lines[:-1])
        assert expected in (_scan_errors(real, "app2")["app2"] or "")
        # Refusing without the operator's word: trust will not overwrite a pinned key.
        refused = _opsctl("site", "trust", str(real.directory), "--limit", "app2", "--yes")
        assert refused.returncode == 1 and "host key changed" in refused.stderr
        fixed = _opsctl("site", "trust", str(real.directory), "--replace", "app2", "--yes")
        assert fixed.returncode == 0, fixed.stderr
        assert _scan_errors(real, "app2") == {"app2": None}
    finally:
        conn.known_hosts.write_text(good)


def test_a_wrong_sudo_password_fails_with_a_clear_line(real) -> None:
    directory = Path(real.directory)
    wrong = directory.parent / "wrong-password"
    wrong.write_text("not-the-password\n")
    wrong.chmod(0o600)
    site_file = directory / "group_vars" / "all" / "site.yml"
    good = site_file.read_text()
    data = yaml.safe_load(good)
    data["site"]["connection"]["become"] = {"password": "file", "file": str(wrong)}
    site_file.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    try:
        error = _scan_errors(real, "app1")["app1"] or ""
        assert error.endswith(f"app1: sudo refused ops (sudo: 3 incorrect password attempts); "
                              f"check the password at {wrong}")
    finally:
        site_file.write_text(good)


def test_apply_as_ops_changes_nothing_and_a_host_refusing_sudo_fails_alone(real) -> None:
    """A no-change apply through the bastion as ops with its sudo password (one role's tags:
    the whole site's converge as ops is the lab's own); then app1's ops password changes
    behind opsctl's back: app1 fails with the one line, the others converge, exit 1."""
    where, tags = ("--site", str(real.directory)), ("--tags", "monitor_agent")
    done = _opsctl("apply", *where, *tags, "-o", "json")
    record = json.loads(done.stdout)
    assert done.returncode == 0 and record["result"] == "ok", done.stderr[-2000:]
    assert {h: t["changed"] for h, t in record["hosts"].items()} == dict.fromkeys(real.hosts, 0)
    # The fault: app1's shadow entry for ops, edited in its root from the lab's side (the
    # control node cannot reach app1 but through the bastion, as ops).
    shadow = lab_dir(real.name) / "hosts" / "app1" / "merged" / "etc" / "shadow"
    good = shadow.read_text()
    other = subprocess.run(["openssl", "passwd", "-6", "Not-The-Sites-Password-1"],
                           capture_output=True, text=True, check=True).stdout.strip()
    shadow.write_text("".join(
        ":".join([line.split(":")[0], other, *line.split(":")[2:]]) + "\n"
        if line.startswith("ops:") else line + "\n" for line in good.splitlines()))
    try:
        done = _opsctl("apply", *where, *tags, "-o", "json")
        record = json.loads(done.stdout)
        assert done.returncode == 1 and record["result"] == "failed"
        assert record["hosts"]["app1"]["status"] == "failed"
        assert {h: t["status"] for h, t in record["hosts"].items() if h != "app1"} == \
            dict.fromkeys(set(real.hosts) - {"app1"}, "ok")
        [failure] = [f for f in record["failures"] if f["host"] == "app1"][:1]
        assert failure["message"] == (
            f"app1: sudo refused ops (sudo password is incorrect); check the password at "
            f"{resolve(real).become_file}"), failure
    finally:
        shadow.write_text(good)
    done = _opsctl("apply", *where, *tags, "-o", "json")
    assert json.loads(done.stdout)["result"] == "ok", done.stderr[-2000:]


def test_deploy_and_rollback_under_load_through_the_bastion(real) -> None:
    from test_deploy_lab import Load, current_versions

    load = Load(real)
    time.sleep(2)
    deployed = _opsctl("deploy", "query-service", "1.1.0", "--site", str(real.directory))
    assert deployed.returncode == 0, deployed.stdout[-2000:] + deployed.stderr[-2000:]
    assert current_versions(real) == {"app1": "1.1.0", "app2": "1.1.0"}
    rolled = _opsctl("rollback", "query-service", "--site", str(real.directory))
    time.sleep(2)
    result = load.stop()
    assert rolled.returncode == 0, rolled.stdout[-2000:] + rolled.stderr[-2000:]
    assert current_versions(real) == {"app1": "1.0.0", "app2": "1.0.0"}
    assert result["failed"] == 0, result["failures"]
    assert set(result["versions"]) == {"1.0.0", "1.1.0"}


def test_backup_drill_switchover_and_jobs_through_the_bastion(real) -> None:
    where = ("--site", str(real.directory))
    backup = _opsctl("backup", "run", *where)
    assert backup.returncode == 0, backup.stderr
    drill = _opsctl("backup", "drill", *where)
    assert drill.returncode == 0 and "PASS" in drill.stdout, drill.stdout + drill.stderr
    leader = json.loads(_opsctl("db", "status", *where, "-o", "json").stdout)["leader"]
    try:
        over = _opsctl("db", "switchover", *where)
        assert over.returncode == 0, over.stderr
        assert json.loads(_opsctl("db", "status", *where, "-o", "json").stdout)["leader"] \
            != leader
    finally:
        back = _opsctl("db", "switchover", *where, "--to", leader)
        assert back.returncode == 0, back.stderr
    jobs = _opsctl("jobs", "run", "log-cleanup", *where, "-o", "json")
    assert jobs.returncode == 0, jobs.stdout + jobs.stderr


def test_a_documented_exception_shows_as_such_on_exactly_that_host(real) -> None:
    """The site's exceptions file: app1 keeps root's key login (a province converging as root
    would), the check fails there, and the report says `exception` with the approver on app1
    alone; app2's same check, without the setting, still passes."""
    exceptions = Path(real.directory) / "security" / "exceptions.yml"
    exceptions.parent.mkdir(exist_ok=True)
    exceptions.write_text(yaml.safe_dump([{
        "check": "sshd_root_login_refused", "hosts": ["app1"],
        "reason": "the province's backup agent logs in as root with a key",
        "compensating_control": "root's key is allowed from the backup server's address only",
        "approver": "province security officer", "expires": "2099-12-31"}],
        allow_unicode=True))
    hosts = for_site(real)
    dropin = "/etc/ssh/sshd_config.d/0-exception.conf"
    done = hosts.run("app1", ["sh", "-c", f"echo 'PermitRootLogin prohibit-password' > {dropin}"],
                     timeout=30)
    assert done.rc == 0, done.output
    try:
        scan = _scan(real, "app1", "app2")
        status = {t["name"]: next(c for c in t["checks"] if c["id"] == "sshd_root_login_refused")
                  for t in scan["targets"] if t["name"] in ("app1", "app2")}
        assert status["app1"]["status"] == "exception", status["app1"]
        assert status["app1"]["exception"]["approver"] == "province security officer"
        assert status["app2"]["status"] == "pass", status["app2"]
        [entry] = scan["exceptions"]
        assert entry["state"] == "applied" and entry["applied_to"] == ["app1"], entry
    finally:
        exceptions.unlink()
        assert hosts.run("app1", ["rm", "-f", dropin], timeout=30).rc == 0
