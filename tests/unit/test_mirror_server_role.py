"""The mirror_server role and the mirror play, without a host."""

from __future__ import annotations

import shlex
from pathlib import Path

import jinja2
import yaml
from mirror_fixtures import with_mirror

from opsctl.mirror.packages import requested_packages, role_packages
from opsctl.site.model import load_site

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "mirror_server"


def tasks() -> list[dict]:
    found = []
    for path in sorted((ROLE / "tasks").glob("*.yml")):
        found.extend(yaml.safe_load(path.read_text()) or [])
    return found


def role_vars(site) -> dict:
    """The role's defaults as Ansible would template them for the mirror host."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    context = {"opsctl_mirror": site.mirror.as_vars(), "ansible_host": "172.31.10.11",
               "ansible_managed": "test"}
    for key, value in defaults.items():
        if isinstance(value, str) and value.startswith("{{"):
            value = env.compile_expression(value.strip()[2:-2])(**context)
        context[key] = value
    return context


def test_every_default_is_declared_in_the_argument_specs():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())
    options = specs["argument_specs"]["main"]["options"]
    assert sorted(set(defaults) ^ set(options)) == []
    assert all(key.startswith("mirror_server_") for key in defaults)


def test_it_reuses_the_lb_roles_nginx_and_the_mirror_carries_it():
    packages = role_packages(ROOT / "roles")
    assert packages["mirror_server"] == packages["lb"] == ["nginx"]
    assert "nginx" in requested_packages(ROOT / "roles")


def test_every_task_is_tagged_and_uses_fqcn_modules():
    for task in tasks():
        if "ansible.builtin.import_tasks" in task:
            continue
        assert "mirror_server" in task.get("tags", []), task["name"]
        module = next(k for k in task if k not in ("name", "tags", "register", "notify",
                                                   "loop", "loop_control", "when"))
        assert module.startswith("ansible.builtin."), (task["name"], module)


def test_the_server_block_serves_site_mirror_path_on_its_port(site_copy):
    with_mirror(site_copy, {"host": "mon1", "port": 8080, "path": "/data/opsctl-mirror"},
                flow={"name": "mirror-host", "from": "all", "to": "mirror", "ports": [8080],
                      "why": "packages"})
    context = role_vars(load_site(site_copy))
    assert context["mirror_server_root"] == "/data/opsctl-mirror"
    assert context["mirror_server_port"] == 8080
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    text = env.from_string((ROLE / "templates" / "opsctl-mirror.conf.j2").read_text()).render(
        context)
    # TLS only, with the pki role's host certificate (signed by the site CA).
    assert "listen 172.31.10.11:8080 ssl;" in text
    assert "ssl_certificate /etc/opsctl/pki/host.crt;" in text
    assert "ssl_certificate_key /etc/opsctl/pki/host.key;" in text
    assert "root /data/opsctl-mirror;" in text
    assert "autoindex off;" in text
    assert text.count("{") == text.count("}")


def test_the_template_is_checked_by_nginx_inside_a_throwaway_main_file():
    task = next(t for t in tasks() if t.get("ansible.builtin.template"))
    validate = task["ansible.builtin.template"]["validate"]
    argv = shlex.split(validate % "/tmp/candidate.conf")
    assert argv[:2] == ["/bin/sh", "-c"]
    assert "include /tmp/candidate.conf;" in argv[2] and "nginx -t -q -c" in argv[2]


def test_the_mirror_play_runs_first_and_only_on_the_mirror_host():
    site_play = yaml.safe_load((ROOT / "playbooks" / "site.yml").read_text())
    assert site_play[0]["ansible.builtin.import_playbook"] == "mirror.yml"
    bootstrap, play = yaml.safe_load((ROOT / "playbooks" / "mirror.yml").read_text())
    env = jinja2.Environment()
    env.filters["select"] = lambda seq: [x for x in seq if x]
    hosts = play["hosts"].strip()[2:-2]
    assert env.compile_expression(hosts)(opsctl_mirror={"host": "mon1"}) == ["mon1"]
    assert env.compile_expression(hosts)(opsctl_mirror={"host": ""}) == []
    # python3 first on that host alone, from the pushed directory, under the role's tag
    assert bootstrap["ansible.builtin.import_playbook"] == "bootstrap.yml"
    assert bootstrap["vars"]["bootstrap_hosts"] == play["hosts"]
    assert "mirror_server" in bootstrap["tags"]
    steps = [t["ansible.builtin.import_role"] for t in play["tasks"]]
    # apt on the pushed directory, then the host certificate nginx presents, then nginx
    assert steps == [{"name": "mirror_server", "tasks_from": "check.yml"},
                     {"name": "base", "tasks_from": "apt.yml"}, {"name": "pki"},
                     {"name": "mirror_server"}]


def test_it_presents_the_pki_roles_host_certificate():
    pki = yaml.safe_load((ROOT / "roles" / "pki" / "defaults" / "main.yml").read_text())
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert defaults["mirror_server_tls_cert"] == f"{pki['pki_dir']}/host.crt"
    assert defaults["mirror_server_tls_key"] == f"{pki['pki_dir']}/host.key"
