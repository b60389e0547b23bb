"""pki status and rotate without hosts: the certificate inventory read from the roles, the
judging of recorded probe answers, the rotation's plan, and the edges with fakes."""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import re
import ssl
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from opsctl.apply.tags import playbook_tags
from opsctl.paths import project_root
from opsctl.pki import RENEW_BEFORE_DAYS, ensure_host_certificates, pki_dir
from opsctl.pki import rotate as rotation
from opsctl.pki.certs import from_pem, utcnow
from opsctl.pki.inventory import CONSUMERS, role_hosts, uses
from opsctl.pki.status import WARN_DAYS, build, gather, probe_request, select_hosts
from opsctl.site import load_site

ROOT = project_root()


# --- the inventory: one source, the roles ------------------------------------------------

def _names_pki_files(role: Path) -> bool:
    for path in [*role.glob("defaults/*.yml"), *role.glob("templates/*.j2")]:
        text = path.read_text(encoding="utf-8")
        if re.search(r"host\.crt|_tls_cert\b", text):
            return True
    return False


def test_every_role_that_uses_the_host_certificate_is_a_consumer():
    using = {r.name for r in (ROOT / "roles").iterdir() if _names_pki_files(r)} - {"pki"}
    # monitor_agent also reports expiry (monitor_agent_certificates): same role, same file
    assert using == {c.role for c in CONSUMERS}


def test_the_paths_and_ports_come_from_the_role_defaults():
    site = load_site("reference")
    pki = yaml.safe_load((ROOT / "roles/pki/defaults/main.yml").read_text())["pki_dir"]
    by = {(u.host, u.service): u for u in uses(site)}
    assert by[("lb1", "nginx (load balancer)")].path == f"{pki}/host.crt"
    assert by[("lb1", "nginx (load balancer)")].port == yaml.safe_load(
        (ROOT / "roles/lb/defaults/main.yml").read_text())["lb_port"]
    assert by[("db1", "PostgreSQL")].starttls == "postgres"
    assert by[("db1", "Patroni REST API")].port == yaml.safe_load(
        (ROOT / "roles/postgresql/defaults/main.yml").read_text())["postgresql_patroni_port"]
    assert by[("app1", "monitoring agent")].port == site.agent_port
    assert by[("mon1", "rsyslog (log receiver)")].port is not None
    assert by[("app1", "site CA (services checking their peers)")].path == f"{pki}/ca.crt"
    # every host has its certificate and the CA listed
    assert {u.host for u in uses(site)} == set(site.hosts)


def test_a_site_mirror_serves_the_host_certificate_and_apt_trusts_the_ca_elsewhere():
    site = load_site("example-bastion")
    mirror = site.mirror.host
    by = {(u.host, u.service): u for u in uses(site)}
    assert by[(mirror, "nginx (offline mirror)")].port == site.mirror.port
    apt = {u.host for u in uses(site) if u.role == "base"}
    assert apt == set(site.hosts) - {mirror}
    apt_ca = yaml.safe_load((ROOT / "roles/base/defaults/main.yml").read_text())[
        "base_mirror_ca_dest"]
    assert all(u.path == apt_ca for u in uses(site) if u.role == "base")


def test_consumers_run_where_the_playbooks_put_their_roles():
    site = load_site("reference")
    etcd = next(c for c in CONSUMERS if c.role == "etcd")
    assert role_hosts(site, etcd) == set(site.groups["dcs"])
    lb = next(c for c in CONSUMERS if c.role == "lb")
    assert role_hosts(site, lb) == set(site.groups["lb"])
    forwarding = next(c for c in CONSUMERS if c.role == "hardening")
    assert role_hosts(site, forwarding) == set(site.hosts) - set(site.groups["logging"])


def _tasks(role: str) -> list[dict]:
    out = []
    for path in sorted((ROOT / "roles" / role / "tasks").glob("*.yml")):
        out += [t for t in yaml.safe_load(path.read_text()) or [] if isinstance(t, dict)]
    return out


def _handler_names(role: str) -> set[str]:
    handlers = yaml.safe_load((ROOT / "roles" / role / "handlers/main.yml").read_text())
    return {h["name"] for h in handlers} | {h["listen"] for h in handlers if "listen" in h}


def test_each_consumer_that_reloads_has_a_tagged_task_that_notifies_its_handler():
    carried = playbook_tags(ROOT / "playbooks" / rotation.PLAYBOOK, ROOT / "roles")
    assert carried is not None and rotation.PKI_TAG in carried
    for consumer in CONSUMERS:
        if consumer.reload == "none":
            assert consumer.tag is None
            continue
        assert consumer.tag in carried, consumer
        tasks = [t for t in _tasks(consumer.role) if consumer.tag in t.get("tags", [])
                 and "ansible.builtin.copy" in t and "/loaded-" in t["ansible.builtin.copy"]
                 ["dest"]]
        assert tasks, f"{consumer.role}: no task tagged {consumer.tag} records what it loaded"
        notify = tasks[0]["notify"]
        for name in [notify] if isinstance(notify, str) else notify:
            assert name in _handler_names(consumer.role), (consumer.role, name)


# --- one threshold: renewal at apply, the alert, status ------------------------------------

def test_the_alert_threshold_is_the_renewal_window():
    rules = yaml.safe_load((ROOT / "monitor/rules/opsctl.rules.yml").read_text())
    alert = next(r for g in rules["groups"] for r in g["rules"]
                 if r.get("alert") == "OpsctlCertificateExpiring")
    days = int(re.search(r"< (\d+) \* 86400", alert["expr"]).group(1))
    assert days == RENEW_BEFORE_DAYS == WARN_DAYS
    assert f"within {days} days" in alert["annotations"]["summary"]


# --- judging recorded answers ------------------------------------------------------------

@pytest.fixture
def issued(state_dir, site_copy):
    site = load_site(site_copy)
    pki, _ = ensure_host_certificates(site)
    return site, pki


def _pem(path: Path) -> str:
    return path.read_text()


def _der(path: Path) -> str:
    return base64.b64encode(ssl.PEM_cert_to_DER_cert(path.read_text())).decode()


def _answer(site, pki, host, host_uses, cert: Path | None = None) -> dict:
    """What pki_probe says on a host that holds and presents `cert` (the issued one)."""
    cert = cert or pki.host_cert(host)
    request = probe_request(site, host, host_uses)
    files = {p: {"pem": _pem(pki.ca_cert if p.endswith("ca.crt") else cert)}
             for p in request["files"]}
    return {"files": files, "endpoints": [{**e, "der": _der(cert)}
                                           for e in request["endpoints"]]}


def _state(site, pki, answers=None, now=None):
    hosts = sorted(site.hosts)
    host_uses = {h: [u for u in uses(site) if u.host == h] for h in hosts}
    answers = answers or {h: _answer(site, pki, h, host_uses[h]) for h in hosts}
    ca = from_pem(_pem(pki.ca_cert))
    issued_certs = {h: from_pem(_pem(pki.host_cert(h))) for h in hosts}
    return build(site, ca, issued_certs, answers, host_uses, now), host_uses


def test_a_site_as_issued_is_healthy(issued):
    site, pki = issued
    status, _ = _state(site, pki)
    assert status.problems == [] and status.healthy
    lb1 = next(h for h in status.hosts if h.name == "lb1")
    assert {p.service for p in lb1.presented} == {"nginx (load balancer)", "monitoring agent"}
    host_file = next(f for f in lb1.files if f.kind == "host")
    assert host_file.matches and "DNS:lb1" in host_file.deployed.sans
    data = status.as_dict()
    assert data["healthy"] and {h["name"] for h in data["hosts"]} == set(site.hosts)


def test_expiry_within_the_window_and_after_it_are_findings(issued):
    site, pki = issued
    end = from_pem(_pem(pki.host_cert("lb1"))).not_after
    soon, _ = _state(site, pki, now=end - timedelta(days=RENEW_BEFORE_DAYS - 1))
    assert any("lb1: /etc/opsctl/pki/host.crt: expires in 29 days" in p for p in soon.problems)
    later, _ = _state(site, pki, now=end - timedelta(days=RENEW_BEFORE_DAYS + 1))
    assert later.problems == []
    gone, _ = _state(site, pki, now=end + timedelta(days=1))
    assert any("lb1: /etc/opsctl/pki/host.crt: expired" in p for p in gone.problems)


def test_a_host_holding_or_presenting_another_certificate_is_a_finding(issued):
    site, pki = issued
    _, host_uses = _state(site, pki)
    answers = {h: _answer(site, pki, h, host_uses[h]) for h in site.hosts}
    # lb1 holds and serves app1's certificate; db1 is down; app2's agent does not answer
    answers["lb1"] = _answer(site, pki, "lb1", host_uses["lb1"], cert=pki.host_cert("app1"))
    answers["db1"] = "db1: unreachable over SSH via ssh (Connection refused)"
    answers["app2"]["endpoints"] = [{"port": e["port"], "error": "Connection refused"}
                                    for e in answers["app2"]["endpoints"]]
    status, _ = _state(site, pki, answers)
    text = "\n".join(status.problems)
    assert "lb1: /etc/opsctl/pki/host.crt: not the certificate the control node issued" in text
    assert "lb1: nginx (load balancer) (port 443): presents" in text
    assert "db1: not reached" in text
    assert "app2: monitoring agent (port" in text and "Connection refused" in text
    assert not status.healthy


def test_gather_asks_each_host_once_with_its_files_and_ports(issued):
    site, pki = issued
    asked = {}

    def probe(host, request):
        asked[host] = request
        host_uses = [u for u in uses(site) if u.host == host]
        return _answer(site, pki, host, host_uses)

    status = gather(site, ["db1", "lb1"], probe)
    assert sorted(asked) == ["db1", "lb1"] and status.healthy
    ports = {e["port"]: e["starttls"] for e in asked["db1"]["endpoints"]}
    assert ports[5432] == "postgres" and 8008 in ports
    assert asked["db1"]["client_key"].endswith("host.key")


def test_limit_names_hosts_or_groups_and_refuses_others():
    site = load_site("reference")
    assert select_hosts(site, ("lb", "app1")) == ["app1", "lb1"]
    with pytest.raises(Exception, match="NOSUCH"):
        select_hosts(site, ("NOSUCH",))


# --- rotation ----------------------------------------------------------------------------

def test_the_plan_for_the_balancer_reloads_nginx_and_restarts_rsyslog_only():
    site = load_site("reference")
    plan = rotation.plan(["lb1"], uses(site, ["lb1"]))
    assert plan.hosts == ("lb1",)
    assert plan.tags == ("lb-tls", "pki-files", "rsyslog_forwarding")
    actions = {s.service: s.action for s in plan.steps}
    assert actions == {"nginx (load balancer)": "reload", "monitoring agent": "none",
                       "rsyslog (log forwarding, client)": "restart"}


def test_the_plan_for_a_database_host_reloads_postgresql_and_patroni_and_leaves_etcd():
    site = load_site("reference")
    plan = rotation.plan(["db1"], uses(site, ["db1"]))
    actions = {s.service: s.action for s in plan.steps}
    assert actions["PostgreSQL"] == actions["Patroni REST API"] == "reload"
    assert actions["etcd (clients)"] == "none"
    assert "postgresql-tls" in plan.tags


def test_rotate_reissues_applies_the_plans_tags_and_checks_the_new_certificate(
        issued, monkeypatch):
    site, pki = issued
    before = from_pem(_pem(pki.host_cert("lb1"))).fingerprint
    applied = {}

    def fake_apply(site_, request, on_event):
        applied["request"] = request
        return SimpleNamespace(result="ok", id="run1", failed_hosts=[])

    monkeypatch.setattr(rotation, "apply", fake_apply)

    def probe(host, request):
        return _answer(site, pki, host, [u for u in uses(site) if u.host == host])

    result = rotation.rotate(site, ("lb1",), probe=probe)
    after = from_pem(_pem(pki.host_cert("lb1"))).fingerprint
    assert after != before
    assert applied["request"].limit == ("lb1",)
    assert set(applied["request"].tags) == {"pki-files", "lb-tls", "rsyslog_forwarding"}
    assert result.ok and result.status.hosts[0].presented[0].cert.fingerprint == after
    assert pki_dir(site.name) == pki.directory


def test_rotate_reports_services_still_on_the_old_certificate(issued, monkeypatch):
    site, pki = issued
    old = pki.directory / "old-lb1.crt"
    old.write_text(_pem(pki.host_cert("lb1")))
    monkeypatch.setattr(rotation, "apply", lambda *_a, **_k: SimpleNamespace(
        result="ok", id="run1", failed_hosts=[]))

    def stale(host, request):
        return _answer(site, pki, host, [u for u in uses(site) if u.host == host], cert=old)

    result = rotation.rotate(site, ("lb1",), probe=stale, verify_seconds=0)
    assert not result.ok
    assert any("not the certificate the control node issued" in p for p in result.problems)


def test_utcnow_is_aware():
    assert utcnow().tzinfo is not None


def test_the_cli_renders_a_healthy_site_and_its_problems(issued):
    from rich.console import Console  # noqa: PLC0415

    from opsctl.cli.pki import render  # noqa: PLC0415

    site, pki = issued
    healthy, host_uses = _state(site, pki)
    console = Console(record=True, width=200)
    console.print(render(healthy))
    text = console.export_text()
    assert "every certificate current and as issued" in text and "lb1" in text
    answers = {h: _answer(site, pki, h, host_uses[h]) for h in site.hosts}
    answers["db1"] = "db1: unreachable"
    broken, _ = _state(site, pki, answers)
    console = Console(record=True, width=200)
    console.print(render(broken))
    assert "db1: not reached: unreachable" in console.export_text()


def test_an_apply_that_cannot_start_is_audited_and_said(issued, monkeypatch):
    from opsctl import audit  # noqa: PLC0415
    from opsctl.errors import PrerequisiteMissing  # noqa: PLC0415

    site, _ = issued

    def refuse(*_a, **_k):
        raise PrerequisiteMissing("no offline mirror key")

    monkeypatch.setattr(rotation, "apply", refuse)
    with pytest.raises(PrerequisiteMissing):
        rotation.rotate(site, ("app1",))
    last = audit.records()[-1]
    assert last["action"] == "pki rotate" and last["args"]["hosts"] == ["app1"]
    assert last["result"].startswith("reissued, not installed")


def test_a_certificate_that_does_not_name_the_hosts_address_now_is_a_finding(issued):
    site, pki = issued
    moved = load_site(site.directory)
    moved.hosts["db2"] = dataclasses.replace(moved.hosts["db2"],
                                             address=ipaddress.IPv4Address("172.31.30.13"))
    status, _ = _state(moved, pki)
    assert any("db2: /etc/opsctl/pki/host.crt: does not name IP:172.31.30.13" in p
               for p in status.problems)
