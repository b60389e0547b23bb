"""The monitoring agent: its collectors on fake /proc data, its server under a silent client,
TLS and basic auth from web-config, and its configuration errors."""

from __future__ import annotations

import base64
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.agent import build_registry
from monitor.collectors.compliance import ComplianceCollector
from monitor.collectors.host import HostCollector
from monitor.collectors.systemd import (
    SystemctlError,
    SystemdCollector,
    parse_disabled,
    parse_show,
    parse_system_state,
    read_disabled_dir,
    select_units,
    show_command,
)
from monitor.config import AgentConfig, ConfigError, load_config
from monitor.server import ScrapeServer
from monitor.webconfig import WebConfig, load_web_config

FAKE_STAT = """cpu  100 5 50 1000 20 0 3 0 0 0
cpu0 100 5 50 1000 20 0 3 0 0 0
intr 0
ctxt 0
btime 1764000000
processes 1
procs_running 1
procs_blocked 0
"""
FAKE_MEMINFO = """MemTotal:        2048000 kB
MemFree:          512000 kB
MemAvailable:    1024000 kB
Buffers:           10000 kB
Cached:           200000 kB
SwapCached:            0 kB
Active:           100000 kB
Inactive:         100000 kB
SwapTotal:        100000 kB
SwapFree:          40000 kB
Shmem:              1000 kB
SReclaimable:       1000 kB
"""
FAKE_NETDEV = """Inter-| Receive | Transmit
 face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop ...
 lo: 999 9 0 0 0 0 0 0 999 9 0 0 0 0 0 0
 eth0: 123456 100 2 0 0 0 0 0 654321 200 1 0 0 0 0 0
"""


def samples(registry_or_collector) -> dict[tuple[str, tuple], float]:
    if isinstance(registry_or_collector, CollectorRegistry):
        registry = registry_or_collector
    else:
        registry = CollectorRegistry()
        registry.register(registry_or_collector)
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture
def fake_proc(tmp_path, monkeypatch):
    proc = tmp_path / "proc"
    (proc / "net").mkdir(parents=True)
    (proc / "stat").write_text(FAKE_STAT)
    (proc / "meminfo").write_text(FAKE_MEMINFO)
    (proc / "vmstat").write_text("pswpin 0\npswpout 0\n")
    (proc / "net" / "dev").write_text(FAKE_NETDEV)
    monkeypatch.setattr(psutil, "PROCFS_PATH", str(proc))
    return proc


def test_cpu_memory_and_network_come_from_proc(fake_proc):
    host = HostCollector()

    class Only:
        def __init__(self, *parts):
            self.parts = parts

        def collect(self):
            for part in self.parts:
                yield from part()

    found = samples(Only(host._cpu, host._memory, host._network, host._boot))
    tick = os.sysconf("SC_CLK_TCK")  # /proc/stat counts in clock ticks
    assert found[("opsctl_host_cpu_seconds_total", (("mode", "user"),))] == pytest.approx(
        100 / tick)
    assert found[("opsctl_host_cpu_seconds_total", (("mode", "idle"),))] == pytest.approx(
        1000 / tick)
    assert found[("opsctl_host_boot_time_seconds", ())] == 1764000000
    assert found[("opsctl_host_memory_total_bytes", ())] == 2048000 * 1024
    assert found[("opsctl_host_memory_available_bytes", ())] == 1024000 * 1024
    assert found[("opsctl_host_swap_free_bytes", ())] == 40000 * 1024
    assert found[("opsctl_host_network_receive_bytes_total", (("device", "eth0"),))] == 123456
    assert found[("opsctl_host_network_errors_total", (("device", "eth0"),))] == 3
    assert not any(key[1] == (("device", "lo"),) for key in found), "loopback is not a NIC"


def test_the_real_host_exposes_filesystems_with_inodes():
    found = samples(HostCollector(AgentConfig().filesystem_types_ignored))
    roots = [k for k in found if k[0] == "opsctl_host_filesystem_size_bytes"
             and ("mountpoint", "/") in k[1]]
    assert roots, "the root filesystem is reported"
    assert any(k[0] == "opsctl_host_filesystem_files_free" for k in found)


def test_systemctl_show_output_becomes_unit_states():
    output = ("Id=postgresql@15-main.service\nActiveState=failed\nLoadState=loaded\n\n"
              "Id=nginx.service\nActiveState=active\nLoadState=loaded\n\n"
              "Id=absent.service\nActiveState=inactive\nLoadState=not-found\n")
    assert parse_show(output) == {"postgresql@15-main.service": "failed",
                                  "nginx.service": "active"}
    found = samples(SystemdCollector(("nginx.service",), None, show=lambda _u: output,
                                     system_state=lambda: "degraded\n"))
    assert found[("opsctl_systemd_unit_state",
                  (("state", "failed"), ("unit", "postgresql@15-main.service")))] == 1
    assert found[("opsctl_systemd_unit_state",
                  (("state", "active"), ("unit", "postgresql@15-main.service")))] == 0


SYSTEMD_FACTS = Path(__file__).resolve().parent / "facts" / "systemd"
WATCHED = ("sshd.service", "chrony.service", "nftables.service", "opsctl-monitor.service",
           "patroni.service")


def recorded(name: str) -> str:
    return (SYSTEMD_FACTS / name).read_text()


def test_one_show_asks_for_the_watch_list_and_every_failed_unit():
    argv = show_command(("ssh.service", "nftables.service"))
    assert argv[:2] == ["systemctl", "show"] and "--state=failed" in argv
    assert argv[argv.index("--") + 1:] == ["ssh.service", "nftables.service", "*"]


def test_every_failed_unit_is_kept_and_the_watch_list_whatever_its_state():
    states = select_units(recorded("show-degraded.txt"), WATCHED)
    assert states == {"ssh.service": "active",  # watched by its alias sshd.service
                      "chrony.service": "active", "nftables.service": "failed",
                      "opsctl-monitor.service": "active", "auditd.service": "failed",
                      "opsctl-test-failing.service": "failed"}
    running = select_units(recorded("show-running.txt"), WATCHED)
    assert "patroni.service" not in running, "a watched unit not installed has no series"
    assert set(running.values()) == {"active"}
    # a unit that is neither watched nor failed (an older systemctl ignoring --state) is not kept
    assert select_units("Id=cron.service\nLoadState=loaded\nActiveState=active\n", ()) == {}


@pytest.mark.parametrize("output, state", [("running\n", "running"), ("degraded\n", "degraded"),
                                           ("starting\n", "starting")])
def test_is_system_running_answers_one_word(output, state):
    assert parse_system_state(output) == state


@pytest.mark.parametrize("output", ["", "Failed to connect to bus: Host is down\n"])
def test_is_system_running_without_an_answer_is_an_error(output):
    with pytest.raises(SystemctlError):
        parse_system_state(output)


def test_disabled_units_are_files_named_as_the_unit_holding_the_reason():
    entries = {"auditd.service": "kernel audit is not available to this host "
                                 "(Error sending status request (Operation not permitted))\n",
               "tmp.mount": "\n",
               "README": "what this directory is",
               "auditd.service.dpkg-old": "stale",
               "long.service": "x" * 500}
    reasons = parse_disabled(entries)
    assert reasons["auditd.service"] == ("kernel audit is not available to this host "
                                         "(Error sending status request (Operation not "
                                         "permitted))")
    assert reasons["tmp.mount"] == "(none recorded)"
    assert len(reasons["long.service"]) == 200
    assert set(reasons) == {"auditd.service", "tmp.mount", "long.service"}


def test_read_disabled_dir(tmp_path):
    assert read_disabled_dir(tmp_path / "absent") == {}
    (tmp_path / "auditd.service").write_text("why\n")
    (tmp_path / "sub").mkdir()
    assert read_disabled_dir(tmp_path) == {"auditd.service": "why\n"}


def test_a_degraded_host_exports_every_failed_unit_its_state_and_what_is_off_by_design(tmp_path):
    (tmp_path / "auditd.service").write_text("kernel audit is not available to this host\n")
    found = samples(SystemdCollector(WATCHED, tmp_path,
                                     show=lambda _u: recorded("show-degraded.txt"),
                                     system_state=lambda: "degraded\n"))
    failed = sorted(dict(k[1])["unit"] for k, v in found.items()
                    if k[0] == "opsctl_systemd_unit_state" and dict(k[1])["state"] == "failed"
                    and v == 1)
    assert failed == ["auditd.service", "nftables.service", "opsctl-test-failing.service"]
    # one series per (unit, state): nftables is watched and failed, and listed once
    assert len([k for k in found if k[0] == "opsctl_systemd_unit_state"
                and dict(k[1])["unit"] == "nftables.service"]) == 5
    assert found[("opsctl_systemd_system_state", (("state", "degraded"),))] == 1
    assert found[("opsctl_systemd_system_state", (("state", "running"),))] == 0
    assert found[("opsctl_systemd_unit_disabled_by_design",
                  (("reason", "kernel audit is not available to this host"),
                   ("unit", "auditd.service")))] == 1
    assert found[("opsctl_systemd_scrape_success", ())] == 1


def test_systemctl_failing_sets_scrape_success_to_0_and_keeps_the_rest():
    def refuse(*_args):
        raise SystemctlError("systemctl show: exit 1: Failed to connect to bus")

    found = samples(SystemdCollector(WATCHED, None, show=refuse,
                                     system_state=lambda: "running\n"))
    assert found[("opsctl_systemd_scrape_success", ())] == 0
    assert found[("opsctl_systemd_system_state", (("state", "running"),))] == 1
    assert not [k for k in found if k[0] == "opsctl_systemd_unit_state"]
    found = samples(SystemdCollector(WATCHED, None, show=lambda _u: recorded("show-running.txt"),
                                     system_state=refuse))
    assert found[("opsctl_systemd_scrape_success", ())] == 0
    assert not [k for k in found if k[0] == "opsctl_systemd_system_state"]
    assert found[("opsctl_systemd_unit_state", (("state", "active"), ("unit", "ssh.service")))] == 1


def test_the_real_systemctl_is_bounded_and_its_failure_is_a_scrape_failure(monkeypatch):
    """Where systemd is not PID 1 (this machine, perhaps) systemctl exits non-zero: that is a
    failed scrape, not a host with nothing failed."""
    import monitor.collectors.systemd as systemd

    calls = []

    def run(argv, **kwargs):
        calls.append((argv, kwargs["timeout"]))
        return subprocess.CompletedProcess(argv, 1, "", "System has not been booted with "
                                           "systemd as init system (PID 1). Can't operate.\n")

    monkeypatch.setattr(systemd.subprocess, "run", run)
    found = samples(SystemdCollector(("ssh.service",), None))
    assert found[("opsctl_systemd_scrape_success", ())] == 0
    assert [argv[:2] for argv, _ in calls] == [["systemctl", "show"],
                                               ["systemctl", "is-system-running"]]
    assert all(timeout == systemd.TIMEOUT_SECONDS for _, timeout in calls)


def test_compliance_file_gives_counts_and_ratio(tmp_path):
    path = tmp_path / "last-scan.json"
    path.write_text('{"finished": 1764000000, "counts": {"pass": 60, "fail": 15, '
                    '"not_applicable": 5}}')
    found = samples(ComplianceCollector(path))
    assert found[("opsctl_compliance_pass_ratio", ())] == pytest.approx(0.8)
    assert found[("opsctl_compliance_checks", (("result", "fail"),))] == 15
    assert samples(ComplianceCollector(tmp_path / "missing.json")) == {}



def test_compliance_file_gives_password_expiry(tmp_path):
    path = tmp_path / "last-scan.json"
    path.write_text('{"finished": 1764000000, "counts": {"pass": 1}, '
                    '"password_expiry": {"ops": 1765000000.0, "alice": 1766000000}}')
    found = samples(ComplianceCollector(path))
    assert found[("opsctl_account_password_expiry_timestamp_seconds", (("user", "ops"),))] \
        == 1765000000
    assert found[("opsctl_account_password_expiry_timestamp_seconds", (("user", "alice"),))] \
        == 1766000000
    # a summary from before expiry was reported: no family at all
    path.write_text('{"finished": 1764000000, "counts": {"pass": 1}}')
    assert not any(name.startswith("opsctl_account_") for name, _ in
                   samples(ComplianceCollector(path)))


def test_metric_names_follow_prometheus_conventions():
    registry = build_registry(AgentConfig())
    text = generate_latest(registry).decode()
    for family in text_string_to_metric_families(text):
        assert family.name.startswith("opsctl_")
        if family.type == "counter":
            assert family.samples[0].name.endswith("_total")
        assert not family.name.endswith(("_milliseconds", "_kilobytes", "_percent"))
        if "bytes" in family.name or "seconds" in family.name:
            assert family.name.endswith(("_bytes", "_seconds", "_bytes_total",
                                         "_seconds_total")), family.name


# --- the server ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-keyout", str(directory / "key.pem"), "-out",
                    str(directory / "cert.pem")], check=True, capture_output=True)
    return directory / "cert.pem", directory / "key.pem"


def serve(web: WebConfig, timeout: float = 5.0):
    server = ScrapeServer("127.0.0.1", 0, build_registry(AgentConfig()), web, timeout=timeout)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


def scrape(url: str, headers: dict[str, str] | None = None, timeout: float = 3.0) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
        return response.read()


@pytest.mark.parametrize("tls", [False, True])
def test_a_silent_connection_does_not_stall_scrapes(tmp_path, certificate, tls):
    web = WebConfig()
    if tls:
        config = tmp_path / "web-config.yml"
        config.write_text(f'{{"tls_server_config": {{"cert_file": "{certificate[0]}", '
                          f'"key_file": "{certificate[1]}"}}}}')
        web = load_web_config(config)
    server = serve(web)
    host, port = server.address
    silent = [socket.create_connection((host, port)) for _ in range(3)]  # send nothing
    try:
        time.sleep(0.2)
        start = time.monotonic()
        for _ in range(5):
            body = scrape(f"{'https' if tls else 'http'}://{host}:{port}/metrics")
            assert b"opsctl_host_memory_total_bytes" in body
        assert time.monotonic() - start < 3.0
    finally:
        for s in silent:
            s.close()
        server.shutdown()


def test_basic_auth_from_web_config(tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt as crypt_module

    hashed = crypt_module.crypt("s3cret", crypt_module.mksalt(crypt_module.METHOD_BLOWFISH,
                                                              rounds=1 << 5))
    config = tmp_path / "web-config.yml"
    config.write_text(f'{{"basic_auth_users": {{"prometheus": "{hashed}"}}}}')
    server = serve(load_web_config(config))
    url = f"http://{server.address[0]}:{server.address[1]}/metrics"
    try:
        with pytest.raises(urllib.error.HTTPError) as exc:
            scrape(url)
        assert exc.value.code == 401
        wrong = base64.b64encode(b"prometheus:nope").decode()
        with pytest.raises(urllib.error.HTTPError):
            scrape(url, {"Authorization": f"Basic {wrong}"})
        right = base64.b64encode(b"prometheus:s3cret").decode()
        assert b"opsctl_agent_info" in scrape(url, {"Authorization": f"Basic {right}"})
    finally:
        server.shutdown()


def test_configuration_mistakes_name_file_and_key(tmp_path):
    bad = tmp_path / "agent.json"
    bad.write_text('{"unit": ["nginx.service"]}')
    with pytest.raises(ConfigError, match=r"agent.json: unit: unknown key"):
        load_config(bad)
    web = tmp_path / "web.json"
    web.write_text('{"basic_auth_users": {"prometheus": "plaintext"}}')
    with pytest.raises(ConfigError, match=r"basic_auth_users.prometheus: expected a bcrypt"):
        load_web_config(web)
    done = subprocess.run([sys.executable, "-m", "monitor", "--listen", "127.0.0.1:0",
                           "--config", str(bad)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.strip() == f"monitor: {bad}: unit: unknown key (known: aide_status_file, " \
        "certificates, compliance_file, disabled_units_dir, labels, pgbackrest, postgresql, " \
        "scheduler_history, units, web_config)"
    bad.write_text('{"disabled_units_dir": "relative/dir"}')
    with pytest.raises(ConfigError, match=r"disabled_units_dir: expected an absolute"):
        load_config(bad)
    bad.write_text('{"disabled_units_dir": "/run/opsctl/disabled-units.d"}')
    assert load_config(bad).disabled_units_dir == Path("/run/opsctl/disabled-units.d")


def test_listen_must_be_address_and_port():
    done = subprocess.run([sys.executable, "-m", "monitor", "--listen", "nonsense"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "expected ADDRESS:PORT" in done.stderr


def test_agent_runs_in_the_foreground_and_stops_on_sigterm(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "--listen", f"127.0.0.1:{port}"],
                            stderr=subprocess.PIPE, text=True)
    try:
        assert "serving on" in proc.stderr.readline()
        assert b"opsctl_host_load1" in scrape(f"http://127.0.0.1:{port}/metrics")
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_a_rotated_certificate_is_served_without_a_restart(tmp_path):
    """The agent makes its TLS context again when the certificate files change (opsctl pki
    rotate writes new ones); a key that does not match its certificate yet keeps the old
    pair serving."""
    def make(name: str) -> tuple[Path, Path]:
        cert, key = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                        f"/CN={name}", "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True)
        return cert, key

    def put(source: Path, dest: Path) -> None:  # as Ansible's copy does: a new file renamed
        (tmp_path / "tmp").write_bytes(source.read_bytes())
        os.replace(tmp_path / "tmp", dest)

    old, new = make("old"), make("new")
    cert, key = tmp_path / "host.crt", tmp_path / "host.key"
    put(old[0], cert)
    put(old[1], key)
    config = tmp_path / "web-config.yml"
    config.write_text(f'{{"tls_server_config": {{"cert_file": "{cert}", "key_file": "{key}"}}}}')
    server = serve(load_web_config(config))
    host, port = server.address

    def presented() -> bytes:
        return ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate((host, port)))

    def der(path: Path) -> bytes:
        return ssl.PEM_cert_to_DER_cert(path.read_text())

    try:
        assert presented() == der(old[0])
        put(new[1], key)  # half-way: the new key beside the old certificate
        assert presented() == der(old[0])
        put(new[0], cert)
        assert presented() == der(new[0])
        assert b"opsctl_host_memory_total_bytes" in scrape(f"https://{host}:{port}/metrics")
    finally:
        server.shutdown()
