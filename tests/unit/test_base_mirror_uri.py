"""The base role's apt source: one place (opsctl_mirror, from Site.mirror) says where it is."""

from __future__ import annotations

import re
import subprocess
import sys
import types
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

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
    assert uris(render_source(site, "db1")) == ["https://172.31.10.11:8080/"]
    assert uris(render_source(site, "lb1")) == ["https://172.31.10.11:8080/"]
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
    monkeypatch.setattr(runner, "ensure_site_secrets", lambda *_a: tmp_path / "secrets")

    @contextmanager
    def reached(_site, _via, _limit):
        yield SimpleNamespace(inventory=tmp_path / "connection.yml", extravars={})

    monkeypatch.setattr(runner, "reach", reached)
    site = load_site("reference")
    runner.apply(site, runner.ApplyRequest(playbook="base.yml"))
    assert seen["extravars"]["opsctl_mirror"] == site.mirror.as_vars()
    assert seen["extravars"]["opsctl_mirror"]["url"] == "http://172.31.10.1:3142/"


def bootstrap_play() -> dict:
    return yaml.safe_load((ROOT / "playbooks" / "bootstrap.yml").read_text())[0]


def ansible_like_env() -> jinja2.Environment:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["ansible.builtin.urlsplit"] = lambda url, part: getattr(urlsplit(url), part)
    env.tests["match"] = lambda value, pattern: re.match(pattern, value) is not None
    return env


def render_bootstrap(uri: str) -> str:
    context = {**bootstrap_play()["vars"], "bootstrap_mirror_uri": uri, "ansible_managed": "t",
               "bootstrap_keyring_b64": "a2V5", "bootstrap_ca_b64": "Y2E="}
    template = (ROOT / "playbooks" / "templates" / "bootstrap-python.sh.j2").read_text()
    return ansible_like_env().from_string(template).render(context)


def test_the_bootstrap_writes_the_files_the_base_role_keeps():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    own = bootstrap_play()["vars"]
    assert own["bootstrap_keyring_dest"] == defaults["base_mirror_keyring_dest"]
    assert own["bootstrap_ca_dest"] == defaults["base_mirror_ca_dest"]
    assert own["bootstrap_tls_conf"] == defaults["base_mirror_tls_conf"]


def test_an_https_mirror_is_checked_against_the_site_ca_by_bootstrap_and_base_alike():
    """Both write the same apt setting (CaInfo for the mirror's address alone), so the base
    role takes the bootstrap's file over without a change."""
    script = render_bootstrap("https://172.31.10.11:3142/")
    subprocess.run(["sh", "-n"], input=script, text=True, check=True)
    assert "/etc/apt/opsctl-mirror-ca.crt" in script
    printf = re.search(r"^printf 'Acquire.*?\n.*?(?= > )", script, re.S | re.M).group(0)
    written = subprocess.run(["sh", "-c", printf], capture_output=True, text=True, check=True)

    task = next(t for t in yaml.safe_load((ROLE / "tasks" / "apt.yml").read_text())
                if t["name"] == "Check the mirror's certificate against the site CA")
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    content = ansible_like_env().from_string(task["ansible.builtin.copy"]["content"]).render(
        base_mirror_uri="https://172.31.10.11:3142/",
        base_mirror_ca_dest=defaults["base_mirror_ca_dest"])
    assert written.stdout == content == (
        'Acquire::https::172.31.10.11::CaInfo "/etc/apt/opsctl-mirror-ca.crt";\n')


def test_a_plain_http_mirror_gets_no_tls_settings():
    script = render_bootstrap("http://172.31.10.1:3142/")
    subprocess.run(["sh", "-n"], input=script, text=True, check=True)
    assert "CaInfo" not in script and "opsctl-mirror-ca.crt" not in script
