"""The CA rollover (`pki rotate --ca [--finish]`) without hosts: real openssl on the control
node, Ansible replaced by fake hosts that take what the control node holds when "applied",
and pki status answered from what they hold. Also: every consumer of the CA reads the
trust bundle, and the roles' reload tasks cover it."""

from __future__ import annotations

import base64
import re
import ssl
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from click.testing import CliRunner

from opsctl import audit
from opsctl.apply.tags import playbook_tags
from opsctl.errors import OpsctlError
from opsctl.paths import project_root
from opsctl.pki import ensure_host_certificates, generations
from opsctl.pki import rollover as rolling
from opsctl.pki import rotate as rotation
from opsctl.pki.certs import all_from_pem, common_name, from_pem
from opsctl.pki.generations import FINISHING, IDLE, OVERLAP, REISSUE, SWITCH, TRUST_BOTH
from opsctl.pki.inventory import CA_CONSUMERS, CA_FILES, ca_uses, trust_tags, uses
from opsctl.pki.issue import SitePki, ca_subject, write_trust
from opsctl.pki.status import build
from opsctl.roles import role_default, role_defaults
from opsctl.site import load_site

ROOT = project_root()


def _der(pem: str) -> str:
    return base64.b64encode(ssl.PEM_cert_to_DER_cert(pem)).decode()


class FakeHosts:
    """Hosts that hold what the control node had at their last apply (the trust bundle as
    every CA file, their certificate as the file and what each service presents)."""

    def __init__(self, site, pki: SitePki) -> None:
        self.site, self.pki = site, pki
        self.held = {h: self._current(h) for h in site.hosts}
        self.requests: list = []
        self.fail: str | None = None  # "failed": the next apply fails; "raise": cannot start

    def _current(self, host: str) -> dict[str, str]:
        return {"ca": self.pki.trust.read_text(), "cert": self.pki.host_cert(host).read_text()}

    def apply(self, _site, request, on_event=None):
        self.requests.append(request)
        failing, self.fail = self.fail, None
        if failing == "raise":
            raise OpsctlError("no offline mirror key")
        if failing == "failed":
            return SimpleNamespace(result="failed", id=f"run{len(self.requests)}",
                                   failed_hosts=["db1"])
        for host in request.limit or self.site.hosts:
            self.held[host] = self._current(host)
        return SimpleNamespace(result="ok", id=f"run{len(self.requests)}", failed_hosts=[])

    def probe(self, host: str, request: dict) -> dict:
        held = self.held[host]
        return {"files": {p: {"pem": held["ca" if p.endswith("ca.crt") else "cert"]}
                          for p in request["files"]},
                "endpoints": [{**e, "der": _der(held["cert"])} for e in request["endpoints"]]}


@pytest.fixture
def hosts(state_dir, site_copy, monkeypatch):
    site = load_site(site_copy)
    pki, _ = ensure_host_certificates(site)
    fake = FakeHosts(site, pki)
    monkeypatch.setattr(rolling, "apply", fake.apply)
    monkeypatch.setattr(rotation, "apply", fake.apply)
    return fake


def _roll(fake: FakeHosts, finish: bool = False, **kwargs):
    return rolling.roll(fake.site, finish=finish, probe=fake.probe, verify_seconds=0, **kwargs)


def _verifies(ca: Path, cert: Path) -> bool:
    return subprocess.run(["openssl", "verify", "-CAfile", str(ca), str(cert)],
                          capture_output=True, check=False).returncode == 0


def _subjects(path: Path) -> list[str]:
    return [common_name(c.subject) for c in all_from_pem(path.read_text())]


# --- generations and the bundle -------------------------------------------------------------

def test_a_site_trusts_its_first_ca_alone_in_the_bundle_and_one_file_per_ca(hosts):
    pki = hosts.pki
    assert pki.trust.read_text() == pki.ca_cert.read_text()
    assert sorted(p.name for p in pki.trust_dir.iterdir()) == ["ca-1.crt"]
    assert common_name(from_pem(pki.ca_cert.read_text()).subject) == "opsctl reference CA"
    assert generations.load(pki.directory) == generations.Rollover()


def test_ensure_ca_never_replaces_an_existing_ca_near_its_end(state_dir, site_copy):
    site = load_site(site_copy)
    pki, _ = ensure_host_certificates(site)
    # the same key and name, 100 days left: its host certificates still verify
    subprocess.run(["openssl", "req", "-x509", "-new", "-key", str(pki.ca_key), "-days", "100",
                    "-subj", ca_subject(site.name, 1), "-out", str(pki.ca_cert)], check=True,
                   capture_output=True)
    short = pki.ca_cert.read_text()
    pki, issued = ensure_host_certificates(site)
    assert pki.ca_cert.read_text() == short and issued == []
    status = build(site, from_pem(short), {}, {}, {})
    assert any("roll it over with `opsctl pki rotate --ca`" in p for p in status.problems)


def test_a_certificate_of_another_ca_is_reissued_at_apply_whatever_its_time(hosts):
    pki = hosts.pki
    before = pki.host_cert("app1").read_text()
    write_trust(pki, [(1, pki.ca_cert.read_text())])
    assert ensure_host_certificates(hosts.site)[1] == []  # same CA: nothing
    other = pki.directory / "other"
    other.mkdir()
    other_pki = SitePki(other)
    subprocess.run(["openssl", "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(other_pki.ca_key),
                    "-subj", "/CN=other", "-out", str(other_pki.ca_cert)], check=True,
                   capture_output=True)
    pki.ca_cert.write_text(other_pki.ca_cert.read_text())
    pki.ca_key.write_text(other_pki.ca_key.read_text())
    assert ensure_host_certificates(hosts.site)[1] == sorted(hosts.site.hosts)
    assert pki.host_cert("app1").read_text() != before


# --- step one --------------------------------------------------------------------------------

def test_step_one_trusts_both_everywhere_then_reissues_every_certificate_by_the_new_ca(hosts):
    pki, site = hosts.pki, hosts.site
    a = pki.ca_cert.read_text()
    old_cert = pki.directory / "old-app1.crt"
    old_cert.write_text(pki.host_cert("app1").read_text())

    result = _roll(hosts)

    assert result.ok, result.problems
    state = generations.load(pki.directory)
    assert (state.phase, state.generation, state.new) == (OVERLAP, 2, 2)
    assert common_name(from_pem(pki.ca_cert.read_text()).subject) == "opsctl reference CA 2"
    assert (pki.directory / "ca-previous.crt").read_text() == a
    assert (pki.directory / "ca-previous.key").stat().st_mode & 0o777 == 0o600
    assert not (pki.directory / "ca-next.crt").exists()
    # the bundle: A then B, in one file and one file each
    assert _subjects(pki.trust) == ["opsctl reference CA", "opsctl reference CA 2"]
    assert sorted(p.name for p in pki.trust_dir.iterdir()) == ["ca-1.crt", "ca-2.crt"]
    # every host certificate is B's; the bundle verifies A's and B's alike
    for host in site.hosts:
        assert _verifies(pki.ca_cert, pki.host_cert(host)), host
        assert not _verifies(pki.directory / "ca-previous.crt", pki.host_cert(host)), host
    assert _verifies(pki.trust, old_cert) and _verifies(pki.trust, pki.host_cert("app1"))
    # the trust bundle went to every host first (no limit), then the rotation of all
    first, second = hosts.requests
    assert first.limit == () and set(first.tags) == set(trust_tags())
    assert second.limit == tuple(sorted(site.hosts)) and rotation.PKI_TAG in second.tags
    assert [d.step for d in result.steps][:3] == [
        "CA 2 made", "every host trusts CA 1 and CA 2", "CA 2 signs"]
    assert result.next == "opsctl pki rotate --ca --finish"
    steps = [r["args"].get("step") for r in audit.records() if r["action"] == rolling.ACTION]
    assert steps == ["new CA", "trust", "switch", "reissue"]
    assert "pki rotate" in [r["action"] for r in audit.records()]
    # pki status: which CAs each host trusts, which CA signed each certificate
    data = result.status.as_dict()
    db1 = next(h for h in data["hosts"] if h["name"] == "db1")
    assert {f["signed_by"] for f in db1["files"] if f["kind"] == "host"} == {
        "opsctl reference CA 2"}
    assert next(f["trusts"] for f in db1["files"] if f["kind"] == "ca") == [
        "opsctl reference CA", "opsctl reference CA 2"]
    assert {p["signed_by"] for p in db1["presented"]} == {"opsctl reference CA 2"}
    assert data["rollover"]["phase"] == OVERLAP
    assert data["rollover"]["next"] == "opsctl pki rotate --ca --finish"


def test_a_second_ca_run_after_step_one_says_where_it_stands_and_makes_no_third_ca(hosts):
    _roll(hosts)
    pki = hosts.pki
    before = (pki.ca_cert.read_text(), pki.trust.read_text(), generations.load(pki.directory))
    with pytest.raises(rolling.RolloverRefused) as refused:
        _roll(hosts)
    assert refused.value.exit_code == 2
    message = str(refused.value)
    assert "every certificate is CA 2's; the hosts still trust CA 1 too" in message
    assert "`opsctl pki rotate --ca --finish`" in message and "\n" not in message
    assert (pki.ca_cert.read_text(), pki.trust.read_text(),
            generations.load(pki.directory)) == before
    assert not (pki.directory / "ca-next.crt").exists()
    assert audit.records()[-1]["result"].startswith("refused: ")


def test_an_interrupted_trust_step_is_taken_up_with_the_same_new_ca(hosts):
    pki = hosts.pki
    hosts.fail = "failed"
    first = _roll(hosts)
    assert not first.ok and "apply run run1: failed (db1)" in first.problems[0]
    state = generations.load(pki.directory)
    assert state.phase == TRUST_BOTH
    assert "not every host trusts it yet" in first.stands
    assert first.next.startswith("opsctl pki rotate --ca again")
    b = (pki.directory / "ca-next.crt").read_text()

    second = _roll(hosts)
    assert second.ok, second.problems
    assert second.stood == ("rollover to CA 2: CA 2 made on the control node; not every host "
                            "trusts it yet")
    assert pki.ca_cert.read_text() == b, "the CA made by the first run, not a third"
    assert generations.load(pki.directory).phase == OVERLAP


def test_a_switch_stopped_between_its_two_renames_is_finished_by_the_next_run(hosts):
    pki = hosts.pki
    a_key, a_cert = pki.ca_key.read_text(), pki.ca_cert.read_text()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rolling._Run, "_switch", lambda self: (_ for _ in ()).throw(
            RuntimeError("power cut")))
        with pytest.raises(RuntimeError):
            _roll(hosts)
    assert generations.load(pki.directory).phase == SWITCH
    # as the switch does, stopped after A was kept and B's key renamed, before B's certificate
    (pki.directory / "ca-previous.key").write_text(a_key)
    (pki.directory / "ca-previous.crt").write_text(a_cert)
    (pki.directory / "ca-next.key").replace(pki.ca_key)

    result = _roll(hosts)
    assert result.ok, result.problems
    assert result.stood == "rollover to CA 2: every host trusts CA 1 and CA 2; CA 1 still signs"
    assert (pki.directory / "ca-previous.key").read_text() == a_key, "A's key kept, not B's"
    for host in hosts.site.hosts:
        assert _verifies(pki.ca_cert, pki.host_cert(host))


def test_an_apply_that_cannot_start_at_the_reissue_leaves_it_to_the_next_run(hosts):
    pki = hosts.pki
    original_apply = hosts.apply
    calls = []

    def second_cannot_start(site, request, on_event=None):
        calls.append(request)
        if len(calls) == 2:
            raise OpsctlError("no offline mirror key")
        return original_apply(site, request, on_event)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rotation, "apply", second_cannot_start)
        mp.setattr(rolling, "apply", second_cannot_start)
        with pytest.raises(OpsctlError, match="no offline mirror key"):
            _roll(hosts)
    assert generations.load(pki.directory).phase == REISSUE
    describe = generations.describe(generations.load(pki.directory))
    assert describe == ("rollover to CA 2: CA 2 signs; host certificates of CA 1 still to be "
                        "replaced")
    result = _roll(hosts)
    assert result.ok and generations.load(pki.directory).phase == OVERLAP


def test_a_trust_apply_that_cannot_start_is_audited_and_resumable(hosts):
    hosts.fail = "raise"
    with pytest.raises(OpsctlError, match="no offline mirror key"):
        _roll(hosts)
    last = audit.records()[-1]
    assert (last["args"]["step"], last["result"]) == ("trust", "not applied: no offline "
                                                      "mirror key")
    assert last["args"]["trusts"] == ["ca-1", "ca-2"]
    assert generations.load(hosts.pki.directory).phase == TRUST_BOTH
    assert _roll(hosts).ok


def test_a_second_rollover_at_the_same_time_is_refused(hosts):
    with rolling.one_at_a_time(hosts.pki), pytest.raises(rolling.RolloverRefused,
                                                         match="another run"):
        _roll(hosts)
    assert not (hosts.pki.directory / "ca-next.crt").exists() and hosts.requests == []


def test_limit_is_refused_before_anything_changes(hosts):
    with pytest.raises(rolling.RolloverRefused, match="--limit"):
        _roll(hosts, limit=("lb1",))
    assert not (hosts.pki.directory / "ca-next.crt").exists() and hosts.requests == []


# --- step two --------------------------------------------------------------------------------

def test_finish_is_refused_while_any_certificate_is_the_old_cas(hosts):
    pki = hosts.pki
    a_cert = pki.host_cert("db1").read_text()
    _roll(hosts)
    hosts.held["db1"]["cert"] = a_cert  # db1 still holds and presents A's certificate
    trust = pki.trust.read_text()
    with pytest.raises(rolling.NotAllOnNewCa) as refused:
        _roll(hosts, finish=True)
    message = str(refused.value)
    assert refused.value.exit_code == 1 and "\n" not in message
    assert "db1: /etc/opsctl/pki/host.crt (opsctl reference CA)" in message
    assert "nothing was changed" in message
    assert pki.trust.read_text() == trust
    assert generations.load(pki.directory).phase == OVERLAP
    assert audit.records()[-1]["result"].startswith("refused: ")


def test_finish_is_refused_before_step_one_is_done_and_when_nothing_rolls(hosts):
    with pytest.raises(rolling.RolloverRefused, match="nothing to finish"):
        _roll(hosts, finish=True)
    hosts.fail = "failed"
    _roll(hosts)
    with pytest.raises(rolling.RolloverRefused) as refused:
        _roll(hosts, finish=True)
    assert "run `opsctl pki rotate --ca (takes the rollover up" in str(refused.value)
    assert generations.load(hosts.pki.directory).phase == TRUST_BOTH


def test_finish_trusts_the_new_ca_alone_everywhere_and_keeps_the_old_one(hosts):
    pki = hosts.pki
    a = pki.ca_cert.read_text()
    _roll(hosts)
    b = pki.ca_cert.read_text()
    hosts.fail = "failed"  # the first --finish stops at its apply
    stopped = _roll(hosts, finish=True)
    assert not stopped.ok and generations.load(pki.directory).phase == FINISHING
    assert stopped.next == "opsctl pki rotate --ca --finish again, once the problems above " \
                           "are fixed"

    done = _roll(hosts, finish=True)
    assert done.ok, done.problems
    state = generations.load(pki.directory)
    assert (state.phase, state.generation, state.new) == (IDLE, 2, None)
    assert pki.trust.read_text() == b
    assert sorted(p.name for p in pki.trust_dir.iterdir()) == ["ca-2.crt"]
    assert (pki.directory / "ca-previous.crt").read_text() == a
    assert all(held["ca"] == b for held in hosts.held.values())
    assert hosts.requests[-1].limit == () and set(hosts.requests[-1].tags) == set(trust_tags())
    assert done.status.healthy, done.status.problems
    with pytest.raises(rolling.RolloverRefused, match="nothing to finish"):
        _roll(hosts, finish=True)


def test_a_next_rollover_retires_the_previous_ca_rather_than_deleting_it(hosts):
    pki = hosts.pki
    a = pki.ca_cert.read_text()
    _roll(hosts)
    _roll(hosts, finish=True)
    result = _roll(hosts)
    assert result.ok and generations.load(pki.directory).generation == 3
    assert common_name(from_pem(pki.ca_cert.read_text()).subject) == "opsctl reference CA 3"
    retired = list((pki.directory / "retired").glob("*.crt"))
    assert [p.read_text() for p in retired] == [a]
    assert _subjects(pki.trust) == ["opsctl reference CA 2", "opsctl reference CA 3"]


# --- pki status ------------------------------------------------------------------------------

def test_a_host_that_does_not_hold_the_bundle_yet_is_a_finding(hosts):
    pki, site = hosts.pki, hosts.site
    hosts.fail = "failed"
    _roll(hosts)  # B in the bundle on the control node, on no host
    status = rotation.gather(site, ["app1"], hosts.probe)
    assert any("app1: /etc/opsctl/pki/ca.crt: trusts opsctl reference CA, not opsctl "
               "reference CA + opsctl reference CA 2" in p for p in status.problems)
    assert status.as_dict()["rollover"]["phase"] == TRUST_BOTH
    assert [common_name(c.subject) for c in status.trust] == _subjects(pki.trust)


def test_the_cli_refuses_finish_without_ca_and_renders_a_rollover(hosts):
    from rich.console import Console  # noqa: PLC0415

    from opsctl.cli import pki as cli_pki  # noqa: PLC0415
    from opsctl.cli.main import cli  # noqa: PLC0415

    done = CliRunner().invoke(cli, ["pki", "rotate", "--finish", "--site",
                                    str(hosts.site.directory)])
    assert done.exit_code == 2 and "--finish goes with --ca" in done.output
    result = _roll(hosts)
    console = Console(record=True, width=200)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cli_pki, "console", console)
        cli_pki._render_rollover(result)
    text = console.export_text()
    assert "before: no CA rollover in progress" in text
    assert "next: opsctl pki rotate --ca --finish" in text
    assert "restart, one member at a time" in text and "opsctl reference CA 2" in text


# --- every consumer reads the bundle ---------------------------------------------------------

def test_every_ca_consumer_reads_the_pki_roles_bundle():
    bundle = f"{role_default('pki', 'pki_dir')}/ca.crt"
    for consumer in CA_CONSUMERS:
        key, _, name = consumer.ca.partition("/")
        value = str(role_default(consumer.role, key))
        assert (f"{value}/{name}" if name else value) == bundle, consumer
    site = load_site("reference")
    assert {u.role for u in ca_uses(site)} == {c.role for c in CA_CONSUMERS}


def test_the_components_database_connections_check_against_the_bundle():
    bundle = f"{role_default('pki', 'pki_dir')}/ca.crt"
    found = [m for path in (ROOT / "inventory").glob("*/group_vars/all/site.yml")
             for m in re.findall(r"sslrootcert=(\S+)", path.read_text(encoding="utf-8"))]
    assert found and set(found) == {bundle}


def _names_the_ca(role: Path) -> bool:
    for path in [*role.glob("defaults/*.yml"), *role.glob("templates/*.j2"),
                 *role.glob("vars/*.yml"), *role.glob("tasks/*.yml")]:
        if re.search(r"ca\.crt|_ca_file|_lock_ca\b", path.read_text(encoding="utf-8")):
            return True
    return False


def test_every_role_that_names_the_ca_is_a_consumer_of_the_bundle():
    naming = {r.name for r in (ROOT / "roles").iterdir() if _names_the_ca(r)}
    # pki installs the bundle, base gives apt its copy (CA_FILES); monitor_agent only reports
    # the expiry of the file's first CA (the oldest: a bundle keeps generation order).
    known = {c.role for c in CA_CONSUMERS} | {role for role, *_ in CA_FILES} | {"monitor_agent"}
    assert naming <= known, naming - known
    assert {c.role for c in CA_CONSUMERS} <= naming


def test_the_control_node_side_reads_the_bundle_never_the_signing_ca():
    tasks = (ROOT / "roles/pki/tasks/main.yml").read_text()
    assert '{ src: "{{ pki_source_dir }}/trust.crt", dest: ca.crt }' in tasks
    assert role_defaults("base")["base_mirror_ca"] == "{{ opsctl_pki_dir }}/trust.crt"
    assert "opsctl_pki_dir ~ '/trust.crt'" in (ROOT / "playbooks/bootstrap.yml").read_text()
    for path in [*(ROOT / "roles").rglob("*.yml"), *(ROOT / "playbooks").glob("*.yml")]:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(opsctl_pki_dir|pki_source_dir)\W+[^\n]*/ca\.(crt|key)", text), \
            path
    assert "trust.d/ca-*.crt" in (ROOT / "roles/pki/vars/main.yml").read_text()


def _tasks(role: str) -> list[dict]:
    out = []
    for path in sorted((ROOT / "roles" / role / "tasks").glob("*.yml")):
        out += [t for t in yaml.safe_load(path.read_text()) or [] if isinstance(t, dict)]
    return out


def test_each_consumer_that_reloads_records_the_bundle_and_notifies_its_handler():
    carried = playbook_tags(ROOT / "playbooks" / rotation.PLAYBOOK, ROOT / "roles")
    assert carried is not None and set(trust_tags()) <= carried
    for consumer in CA_CONSUMERS:
        if consumer.reload == "none":
            assert consumer.tag is None
            continue
        tagged = [t for t in _tasks(consumer.role) if consumer.tag in t.get("tags", [])]
        stats = [t for t in tagged if "ansible.builtin.stat" in t]
        assert any("ca.crt" in str(t) for t in stats), f"{consumer.role}: bundle not recorded"
        records = [t for t in tagged if "ansible.builtin.copy" in t
                   and "/loaded-" in t["ansible.builtin.copy"]["dest"]]
        assert records and records[0].get("notify"), consumer.role
        handlers = yaml.safe_load((ROOT / "roles" / consumer.role / "handlers/main.yml")
                                  .read_text())
        names = {h["name"] for h in handlers}
        notify = records[0]["notify"]
        for name in [notify] if isinstance(notify, str) else notify:
            assert name in names, (consumer.role, name)
    etcd = yaml.safe_load((ROOT / "roles/etcd/handlers/main.yml").read_text())
    rolling_restart = next(h for h in etcd if h["name"] == "Restart etcd one member at a time")
    assert rolling_restart["throttle"] == 1 and "endpoint health" in str(rolling_restart)


def test_the_host_certificate_consumers_and_the_bundle_share_the_pki_dir():
    site = load_site("reference")
    ca_files = {u.path for u in uses(site) if u.kind == "ca" and u.role == "pki"}
    assert ca_files == {f"{role_default('pki', 'pki_dir')}/ca.crt"}
