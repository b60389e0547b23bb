"""Components as data: the schema and rules of site.components, artifacts and their checksums,
the reproducible build, and the balancer's backends file (role template == opsctl's renderer)."""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
import pytest
import yaml

from opsctl.apply.runner import ApplyRequest, apply
from opsctl.cli.main import main
from opsctl.deploy import balancer, engine
from opsctl.deploy.artifacts import site_artifacts, verify_release
from opsctl.deploy.plan import DependencyState, DeployRefused, dependency_problem
from opsctl.errors import InvalidInput
from opsctl.reference_components.build import build_reference
from opsctl.site import load_site
from opsctl.site.model import component_order
from opsctl.transport import Result

ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def edit_components(site: Path, change) -> None:
    path = site / "group_vars" / "all" / "site.yml"
    data = yaml.safe_load(path.read_text())
    change(data["site"]["components"])
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


@pytest.fixture(scope="module", autouse=True)
def artifacts():
    return {(a.component, a.version): a for a in build_reference()}


def one_error_line(err: str, fragment: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    assert len(lines) == 1, lines
    assert lines[0].startswith("opsctl: ") and fragment in lines[0], lines


def test_reference_components_load():
    site = load_site("reference")
    qs = site.spec.components["query-service"]
    assert (qs.group, qs.port, qs.version, qs.location) == ("app", 8080, "1.0.0", "/query/")
    assert set(qs.releases) == {"1.0.0", "1.1.0", "9.9.9-broken"}
    assert site.spec.components["access-gateway"].depends_on == ["query-service"]


def test_reference_checksums_match_the_build(artifacts):
    """The build is reproducible and the reference site names its checksums (stale check)."""
    site = load_site("reference")
    for name, comp in site.spec.components.items():
        for version, release in comp.releases.items():
            assert artifacts[(name, version)].sha256 == release.sha256, (name, version)
    again = {(a.component, a.version): a.sha256 for a in build_reference()}
    assert again == {k: a.sha256 for k, a in artifacts.items()}


def test_unknown_group_is_refused(capsys, site_copy):
    edit_components(site_copy, lambda c: c["query-service"].update(group="appz"))
    code, _, err = run(capsys, "site", "validate", str(site_copy))
    assert code == 2
    one_error_line(err, "site.yml: site.components.query-service.group: unknown group 'appz'")


def test_version_without_release_and_unknown_dependency(capsys, site_copy):
    def change(c):
        c["query-service"]["version"] = "2.0.0"
        c["access-gateway"]["depends_on"] = ["billing"]
    edit_components(site_copy, change)
    code, _, err = run(capsys, "site", "validate", str(site_copy))
    assert code == 2
    assert "site.components.query-service.version: '2.0.0' is not one of its releases" in err
    assert "site.components.access-gateway.depends_on: unknown component 'billing'" in err


def test_port_without_a_flow_from_lb(capsys, site_copy):
    edit_components(site_copy, lambda c: c["query-service"].update(port=8090))
    code, _, err = run(capsys, "site", "validate", str(site_copy))
    assert code == 2
    one_error_line(err, "site.components.query-service.port: no flow lets lb reach app:8090")


def test_malformed_checksum_is_a_schema_error(capsys, site_copy):
    edit_components(site_copy,
                    lambda c: c["query-service"]["releases"]["1.1.0"].update(sha256="abc"))
    code, _, err = run(capsys, "site", "validate", str(site_copy))
    assert code == 2
    one_error_line(err, "site.components.query-service.releases.1.1.0.sha256")


def test_wrong_checksum_refuses_the_deploy_before_any_host(capsys, site_copy, state_dir):
    edit_components(site_copy,
                    lambda c: c["query-service"]["releases"]["1.1.0"].update(sha256="0" * 64))
    code, _, err = run(capsys, "deploy", "query-service", "1.1.0", "--site", str(site_copy))
    assert code == 2
    one_error_line(err, "site.components.query-service.releases.1.1.0.sha256: checksum "
                        "mismatch")
    assert not (state_dir / "runs").exists()  # no run: nothing started


def test_missing_artifact_refuses_deploy_and_apply(capsys, site_copy, state_dir):
    edit_components(site_copy, lambda c: c["query-service"]["releases"]["1.0.0"].update(
        artifact="build/components/nowhere.tar.gz"))
    code, _, err = run(capsys, "deploy", "query-service", "1.0.0", "--site", str(site_copy))
    assert code == 2
    one_error_line(err, "site.components.query-service.releases.1.0.0.artifact: missing "
                        "artifact")
    with pytest.raises(InvalidInput) as exc:
        apply(load_site(site_copy), ApplyRequest())
    assert "releases.1.0.0.artifact: missing artifact" in str(exc.value)
    assert not (state_dir / "runs").exists()


def test_unknown_component_and_unknown_release(capsys, state_dir):
    code, _, err = run(capsys, "deploy", "billing", "1.0.0", "--site", "reference")
    assert code == 2
    one_error_line(err, "site.components: unknown component 'billing'")
    with pytest.raises(InvalidInput, match="no release '3.0.0'"):
        verify_release(load_site("reference"), "query-service", "3.0.0")


def test_site_artifacts_are_verified_paths():
    found = site_artifacts(load_site("reference"))
    assert set(found) == {"query-service", "access-gateway"}
    assert found["query-service"].endswith("query-service-1.0.0.tar.gz")


def test_backends_file_from_the_role_equals_opsctls_renderer():
    """An apply after a deploy must change nothing: both write the same bytes."""
    site = load_site("reference")
    defaults = balancer.lb_defaults()
    env = jinja2.Environment(trim_blocks=True, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined)
    template = env.from_string(
        (ROOT / "roles" / "lb" / "templates" / "backends.conf.j2").read_text())
    raw = yaml.safe_load((site.directory / "group_vars/all/site.yml").read_text())["site"]
    for name in site.spec.components:
        rendered = template.render(
            lb_component=name, site=raw, lb_max_fails=defaults["lb_max_fails"],
            lb_fail_timeout=defaults["lb_fail_timeout"],
            groups={g: sorted(m, key=list(site.hosts).index) for g, m in site.groups.items()},
            hostvars={h.name: {"ansible_host": str(h.address)} for h in site.hosts.values()})
        assert rendered == balancer.backends_text(site, name, set())
    drained = balancer.backends_text(site, "query-service", {"app1"})
    assert "172.31.20.21:8080 max_fails=2 fail_timeout=10s down; # app1" in drained
    assert "172.31.20.22:8080 max_fails=2 fail_timeout=10s; # app2" in drained


# --- depends_on: apply installs dependencies first, validation refuses cycles, and a deploy
# refuses to start next to a dependency that is not deployed and healthy (nothing changed).


def test_dependencies_come_first_ties_by_name() -> None:
    assert component_order({"gateway": ["query"], "query": [], "admin": []}) == [
        "admin", "query", "gateway"]
    assert component_order({"c": ["b"], "b": ["a"], "a": []}) == ["a", "b", "c"]
    assert load_site("reference").component_order() == ["query-service", "access-gateway"]


def test_a_cycle_is_named() -> None:
    with pytest.raises(ValueError, match="a -> b -> c -> a"):
        component_order({"a": ["b"], "b": ["c"], "c": ["a"]})


def test_cycle_refused_by_validation(capsys, site_copy) -> None:
    edit_components(site_copy, lambda c: c["query-service"].update(depends_on=["access-gateway"]))
    code, _, err = run(capsys, "site", "validate", str(site_copy))
    assert code == 2
    one_error_line(err, "site.components: depends_on has a cycle: "
                        "access-gateway -> query-service -> access-gateway")


def test_dependency_problem_names_every_bad_host() -> None:
    ok = DependencyState("query-service", "app1", "1.0.0", True)
    assert dependency_problem("access-gateway", [ok]) is None
    problem = dependency_problem("access-gateway", [
        ok, DependencyState("query-service", "app2", "1.1.0", False, "answered 500"),
        DependencyState("query-service", "app3", None, False)])
    assert problem is not None and "\n" not in problem
    assert problem.startswith("access-gateway depends on query-service, which is not deployed "
                              "and healthy (query-service on app2: unhealthy (answered 500); "
                              "query-service on app3: not installed)")
    assert problem.endswith("nothing was changed")


class FakeHosts:
    """Answers the engine's probes; records every command so a test sees nothing changed."""

    def __init__(self, healthy: dict[tuple[str, str], bool]) -> None:
        self.healthy = healthy  # (host, component) -> health answer
        self.commands: list[tuple[str, list[str]]] = []

    def run(self, host: str, argv: list[str], stdin=None, timeout: float = 120) -> Result:
        self.commands.append((host, argv))
        if argv == ["true"]:
            return Result(0, "", "")
        if argv[0] == "python3" and "--base" in argv:  # the release probe
            return Result(0, json.dumps({"current": "1.0.0", "previous": None,
                                         "releases": ["1.0.0"], "active": True}), "")
        if argv[0] == "python3" and "--url" in argv:  # the health check
            port = argv[argv.index("--url") + 1].split(":")[2].split("/")[0]
            component = "query-service" if port == "8080" else "access-gateway"
            ok = self.healthy.get((host, component), True)
            return Result(0 if ok else 1, "healthy" if ok else "unhealthy: answered 500", "")
        raise AssertionError(f"the deploy went on to change {host}: {argv}")


def test_deploy_refused_when_a_dependency_is_unhealthy(monkeypatch, site_copy) -> None:
    path = site_copy / "group_vars" / "all" / "site.yml"
    data = yaml.safe_load(path.read_text())
    data["site"]["components"]["access-gateway"]["releases"]["1.0.1"] = (
        data["site"]["components"]["access-gateway"]["releases"]["1.0.0"])
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    site = load_site(site_copy)
    hosts = FakeHosts({("app2", "query-service"): False})
    monkeypatch.setattr(engine, "for_site", lambda _site: hosts)
    monkeypatch.setattr(engine, "verify_release", lambda *_a: None)
    with pytest.raises(DeployRefused, match="query-service on app2: unhealthy"):
        engine.deploy(site, engine.DeployRequest("access-gateway", "1.0.1"))
    # Only probes ran: no drain, no switch.
    assert not [a for _h, a in hosts.commands if a[:2] == ["sh", "-c"]]


def test_a_rolling_restart_waits_out_the_balancers_fail_timeout():
    """The component role restarts one host at a time and pauses before the next: long
    enough for the balancer to have taken the restarted host back (nginx leaves a backend
    that failed alone for lb_fail_timeout), or two hosts would be out at once."""
    from opsctl.roles import role_default

    pause = int(role_default("component", "component_restart_pause"))
    fail_timeout = str(role_default("lb", "lb_fail_timeout"))
    assert fail_timeout.endswith("s")
    assert pause >= int(fail_timeout[:-1])
