"""Probes from the site's own hosts through its transport: the matrix, the script's output,
and what becomes of unreachable hosts and the unmanaged zones. A fake transport, no hosts."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from opsctl.check.netfacts import network_facts
from opsctl.check.probes import (
    PROBE_SCRIPT,
    PUBLIC_NOT_PROBED,
    ProbeOutputError,
    matrix,
    parse_outcomes,
    probe_argv,
    probe_ports,
    probe_site,
)
from opsctl.site import load_site
from opsctl.transport import HostUnreachable, Result
from security.evaluate import ERROR, FAIL, PASS, evaluate_target
from security.schema import load_catalog


@pytest.fixture(scope="module")
def site():
    return load_site("reference")


@dataclass
class FakeTransport:
    """Answers each host's probe call as the whitelist expects, except what a test changes."""

    site: object
    override: dict[tuple[str, str, int], str] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)
    calls: list[tuple[str, list[str], object]] = field(default_factory=list)

    def run(self, host: str, argv: list[str], stdin=None, timeout: float = 120) -> Result:
        self.calls.append((host, argv, stdin))
        if host in self.down:
            raise HostUnreachable(f"{host}: unreachable over SSH (timed out)")
        mine = {(p.destination.address, p.port): p for p in matrix(self.site)
                if p.source.name == host}
        out = []
        for addr, port in json.loads(argv[2]):
            p = mine[(addr, port)]
            default = "connected" if p.expect_open else "timeout"
            out.append(self.override.get((host, p.destination.name, port), default))
        return Result(0, json.dumps(out) + "\n", "")


def test_the_matrix_goes_from_every_host_to_every_other_host_and_the_control_node(site):
    probes = matrix(site)
    ports = probe_ports(site)
    n = len(site.hosts)
    assert len(probes) == n * n * len(ports)  # (n - 1) hosts + the control node
    by = {(p.source.name, p.destination.name, p.port): p for p in probes}
    assert by[("app1", "db1", 5432)].expect_open
    assert by[("app1", "db1", 5432)].flow == "app-db"
    assert by[("app1", "control", 3142)].expect_open
    assert not by[("app1", "mon1", 2222)].expect_open
    assert not by[("lb1", "db1", 5432)].expect_open
    assert {p.source.name for p in probes} == set(site.hosts)
    assert 123 not in ports  # UDP has no handshake to probe


def test_one_remote_call_per_host_with_the_script_on_stdin(site):
    fake = FakeTransport(site)
    run = probe_site(site, fake)
    assert sorted(h for h, _, _ in fake.calls) == sorted(site.hosts)
    for _, argv, stdin in fake.calls:
        assert argv[:2] == ["python3", "-"]
        assert stdin == PROBE_SCRIPT
    assert len(run.results) == len(matrix(site))
    assert all(r.ok for r in run.results)
    assert set(run.not_probed) == {"control", "public"}
    assert run.not_probed["public"] == PUBLIC_NOT_PROBED


def test_an_unreachable_host_is_not_probed_with_its_reason(site):
    run = probe_site(site, FakeTransport(site, down={"db2"}))
    assert "unreachable" in run.not_probed["db2"]
    assert not any(r.probe.source.name == "db2" for r in run.results)


def test_the_public_zone_comes_from_the_lab_when_it_can(site):
    from opsctl.check.probes import Endpoint, Probe, ProbeResult

    client = Endpoint("public", "ns", "172.31.99.10")
    lb = Endpoint("lb1", None, "172.31.20.11")
    lab = [ProbeResult(Probe(client, lb, 443, True, "public-https"), "connected")]
    run = probe_site(site, FakeTransport(site), public=lambda _site: lab)
    assert "public" not in run.not_probed
    assert run.results[-1] is lab[0]


def test_the_scan_judges_the_boundary_from_the_probes(site):
    catalog = load_catalog()

    def statuses(run):
        facts = network_facts(site, run.as_dicts(), run.not_probed)
        return {r.id: r for r in evaluate_target("t", "network", catalog, facts).results}

    clean = statuses(probe_site(site, FakeTransport(site)))
    assert clean["net_ssh_only_from_mgmt"].status == PASS
    assert clean["net_boundary_default_deny"].status == PASS
    # on a real site nothing starts from the internet: its checks are not passed
    assert clean["net_public_reaches_only_lb"].status == ERROR
    assert "not probed from public" in clean["net_public_reaches_only_lb"].reason

    leak = statuses(probe_site(site, FakeTransport(site, {("app1", "db1", 2222): "refused"})))
    assert leak["net_ssh_only_from_mgmt"].status == FAIL
    assert "app1 -> db1:2222 (refused)" in leak["net_ssh_only_from_mgmt"].reason


def test_parse_outcomes(site):
    probes = matrix(site)[:3]
    got = parse_outcomes(probes, 0, '["connected", "refused", "timeout"]\n', "")
    assert [r.outcome for r in got] == ["connected", "refused", "timeout"]
    with pytest.raises(ProbeOutputError, match="exit 1"):
        parse_outcomes(probes, 1, "", "python3: not found\n")
    with pytest.raises(ProbeOutputError, match="no list of 3"):
        parse_outcomes(probes, 0, '["connected"]', "")
    with pytest.raises(ProbeOutputError):
        parse_outcomes(probes, 0, "Traceback ...", "")


def test_the_script_connects_refuses_and_times_out_for_real(site):
    # The script itself, on this machine, against loopback: one listener, one closed port.
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        open_port = listener.getsockname()[1]
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed_port = s.getsockname()[1]
        targets = [["127.0.0.1", open_port], ["127.0.0.1", closed_port]]
        done = subprocess.run([sys.executable, "-", json.dumps(targets), "1"],
                              input=PROBE_SCRIPT, capture_output=True, text=True, timeout=30,
                              check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["connected", "refused"]


def test_probe_argv_names_every_target(site):
    probes = matrix(site)[:2]
    argv = probe_argv(probes, 2.0)
    assert json.loads(argv[2]) == [[p.destination.address, p.port] for p in probes]
    assert argv[3] == "2.0"


def test_a_whole_site_scan_probes_by_default_over_the_scans_own_transport(monkeypatch):
    import opsctl.check.fleet as fleet
    import opsctl.transport
    from opsctl.lab.lifecycle import public_probes

    seen = {}

    class FakeHosts:
        def __init__(self, via):
            self.conn = type("Conn", (), {"via": via})()

    def fake_scan_site(site, level, limit, transport=None, probes=None, exceptions=None):
        seen["probes"] = probes
        return "scan"

    def fake_probe_site(site, hosts, public=None):
        seen["hosts"], seen["public"] = hosts, public
        return "ran"

    made = []
    monkeypatch.setattr(opsctl.transport, "for_site",
                        lambda site, via=None: made.append(FakeHosts(via or "ssh")) or made[-1])
    monkeypatch.setattr(fleet, "scan_site", fake_scan_site)
    monkeypatch.setattr(fleet, "probe_site", fake_probe_site)
    assert fleet.scan_named_site("reference") == "scan"
    assert seen["probes"] == "ran"
    # one transport for probes and scan (one sudo password prompt, one ControlMaster)
    assert len(made) == 1 and seen["hosts"] is made[0]
    # a real site has no host of ours on the internet: no lab namespace stands in for it
    assert seen["public"] is None
    fleet.scan_named_site("reference", via="lab")
    assert seen["public"] is public_probes
    fleet.scan_named_site("reference", probe=False)
    assert seen["probes"] is None
    fleet.scan_named_site("reference", limit=["app1"])
    assert seen["probes"] is None  # a partial scan has no network target to feed
