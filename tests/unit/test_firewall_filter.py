"""The firewall role's filter plugin and template: host rules from the flow whitelist."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import jinja2
import pytest
import yaml

from opsctl.site import load_site

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "firewall"
REFERENCE = ROOT / "inventory" / "reference"
RULE = re.compile(
    r"^ip saddr (?P<src>\{[^}]*\}|\S+) ip daddr (?P<dst>\S+) tcp dport (?P<ports>\{[^}]*\}|\S+)"
    r' counter accept comment "flow (?P<flow>[^"]+)"$'
)


def _items(text: str) -> set[str]:
    return {v.strip() for v in text.strip("{} ").split(",")}


@pytest.fixture(scope="module")
def plugin() -> ModuleType:
    path = ROLE / "filter_plugins" / "opsctl_flows.py"
    spec = importlib.util.spec_from_file_location("opsctl_flows", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site():
    return load_site(REFERENCE)


def parsed(plugin: ModuleType, host: str) -> list[dict]:
    rules = []
    for line in plugin.opsctl_host_rules(str(REFERENCE), host):
        m = RULE.match(line)
        assert m, f"unexpected rule line: {line}"
        rules.append({"src": _items(m["src"]), "dst": m["dst"],
                      "ports": {int(p) for p in _items(m["ports"])}, "flow": m["flow"]})
    return rules


def sources_for(rules: list[dict], port: int) -> set[str]:
    return set().union(*(r["src"] for r in rules if port in r["ports"]))


def test_db1_accepts_postgres_from_app_and_db_hosts(plugin, site):
    rules = parsed(plugin, "db1")
    src = sources_for(rules, 5432)
    for host in ("app1", "app2", "db1", "db2"):
        assert f"{site.hosts[host].address}/32" in src, host
    assert all(r["dst"] == f"{site.hosts['db1'].address}/32" for r in rules)
    assert {r["flow"] for r in rules if 5432 in r["ports"]} >= {"app-db", "db-replication"}


def test_db1_accepts_ssh_and_agent_from_mgmt(plugin, site):
    rules = parsed(plugin, "db1")
    mgmt = str(site.zones["mgmt"].cidr)
    assert mgmt in sources_for(rules, 2222)
    assert mgmt in sources_for(rules, 9110)


def test_lb1_has_no_postgres_rule(plugin):
    rules = parsed(plugin, "lb1")
    assert rules
    assert not [r for r in rules if 5432 in r["ports"]]


def test_unknown_host_is_a_clear_error(plugin):
    from ansible.errors import AnsibleFilterError

    with pytest.raises(AnsibleFilterError, match="nosuchhost"):
        plugin.opsctl_host_rules(str(REFERENCE), "nosuchhost")


def test_rendered_template_drops_by_default(plugin):
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["opsctl_host_rules"] = plugin.opsctl_host_rules
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    role_vars = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    expression = role_vars["firewall_rules"].strip().removeprefix("{{").removesuffix("}}")
    context = {**defaults, "firewall_site_dir": str(REFERENCE), "inventory_hostname": "db1",
               "ansible_managed": "test"}
    context["firewall_rules"] = env.compile_expression(expression)(**context)
    text = env.from_string((ROLE / "templates" / "nftables.conf.j2").read_text()).render(context)
    assert "policy drop" in text
    assert 'comment "flow app-db"' in text
    assert text.rstrip().endswith("}")
    assert 'counter log prefix "opsctl-host-drop " drop' in text
