"""The base role's apt source: one place (opsctl_mirror, from Site.mirror) says where it is."""

from __future__ import annotations

import sys
import types
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import jinja2
import yaml
from mirror_fixtures import with_mirror

from opsctl.apply import runner
from opsctl.site.model import load_site

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "base"


def render_source(site, host: str) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    context = {"opsctl_mirror": site.mirror.as_vars(), "inventory_hostname": host,
               "ansible_managed": "test"}
    expression = defaults["base_mirror_uri"].strip().removeprefix("{{").removesuffix("}}")
    context["base_mirror_uri"] = env.compile_expression(expression)(**context)
    context["base_mirror_keyring_dest"] = defaults["base_mirror_keyring_dest"]
    template = (ROLE / "templates" / "opsctl-mirror.sources.j2").read_text()
    return env.from_string(template).render(context)


def uris(text: str) -> list[str]:
    return [line.split(":", 1)[1].strip() for line in text.splitlines()
            if line.startswith("URIs:")]


def test_without_site_mirror_every_host_uses_the_control_node():
    site = load_site("reference")
    for host in ("mon1", "db1", "lb1"):
        text = render_source(site, host)
        assert uris(text) == ["http://172.31.10.1:3142/"]
        assert "Signed-By: /etc/apt/keyrings/opsctl-mirror.gpg" in text
        assert "Suites: ./" in text


def test_with_site_mirror_hosts_use_it_and_it_reads_its_own_directory(site_copy):
    with_mirror(site_copy, {"host": "mon1", "port": 8080, "path": "/srv/mirror"},
                flow={"name": "mirror-host", "from": "all", "to": "mirror", "ports": [8080],
                      "why": "packages"})
    site = load_site(site_copy)
    assert uris(render_source(site, "db1")) == ["http://172.31.10.11:8080/"]
    assert uris(render_source(site, "lb1")) == ["http://172.31.10.11:8080/"]
    mirror_host = render_source(site, "mon1")
    assert uris(mirror_host) == ["file:/srv/mirror/"]
    # Same signed keyring either way: a file: source is verified like an http: one.
    assert "Signed-By: /etc/apt/keyrings/opsctl-mirror.gpg" in mirror_host


def test_no_role_or_playbook_names_the_control_node_as_the_mirror():
    for path in [*ROOT.glob("roles/**/*.yml"), *ROOT.glob("roles/**/*.j2"),
                 *ROOT.glob("playbooks/*.yml")]:
        text = path.read_text()
        assert "control.address" not in text, path
        assert "mirror_port" not in text, path


def test_apply_hands_the_roles_the_sites_mirror(tmp_path, monkeypatch, state_dir):
    seen: dict = {}

    def fake_run(**kwargs):
        seen.update(kwargs)
        return SimpleNamespace(rc=0, status="successful")

    monkeypatch.setitem(sys.modules, "ansible_runner", types.SimpleNamespace(run=fake_run))
    keyring = tmp_path / "opsctl-mirror.gpg"
    keyring.write_bytes(b"key")
    monkeypatch.setattr(runner, "public_key_path", lambda: keyring)
    monkeypatch.setattr(runner, "site_artifacts", lambda _site: {})
    monkeypatch.setattr(runner, "engine_env", lambda _engine: ("ssh", {}))
    monkeypatch.setattr(runner, "ensure_host_certificates",
                        lambda _site: (SimpleNamespace(directory=tmp_path / "pki"), []))
    monkeypatch.setattr(runner, "ensure_site_secrets", lambda _name: tmp_path / "secrets")
    monkeypatch.setattr(runner, "facts_dir", lambda _name: tmp_path / "facts")

    @contextmanager
    def reached(_site, _via, _limit):
        yield SimpleNamespace(inventory=tmp_path / "connection.yml", extravars={})

    monkeypatch.setattr(runner, "reach", reached)
    site = load_site("reference")
    runner.apply(site, runner.ApplyRequest(playbook="base.yml"))
    assert seen["extravars"]["opsctl_mirror"] == site.mirror.as_vars()
    assert seen["extravars"]["opsctl_mirror"]["url"] == "http://172.31.10.1:3142/"
