"""Monitoring the access gateway, the site side: `site.provinces` (expected upload interval per
province) and a component's `metrics_port` validated with one-line errors, the flow that lets
Prometheus in, and the scrape job the prometheus role renders from the site. (The gateway's
own metrics: test_reference_components.py; the alert rules: test_monitor_rules.py.)"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml
from test_monitor_rules import promtool

from opsctl.cli.main import main
from opsctl.roles import role_default
from opsctl.site import load_site
from opsctl.site.schema import NAME

ROOT = Path(__file__).resolve().parents[2]


def validate(capsys: pytest.CaptureFixture[str], site: Path) -> tuple[int, list[str]]:
    with pytest.raises(SystemExit) as exc:
        main(["site", "validate", str(site)])
    _, err = capsys.readouterr()
    assert "Traceback" not in err
    return int(exc.value.code or 0), [line for line in err.splitlines() if line.strip()]


def edit_site(site: Path, change) -> None:
    path = site / "group_vars" / "all" / "site.yml"
    data = yaml.safe_load(path.read_text())
    change(data["site"])
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


def test_reference_provinces_and_gateway_metrics_port():
    site = load_site("reference")
    assert len(site.spec.provinces) == 31
    assert site.spec.provinces["hubei"].upload_interval_hours == 24
    assert site.spec.components["access-gateway"].metrics_port == 9112
    assert site.spec.components["query-service"].metrics_port is None


@pytest.mark.parametrize(("change", "expected"), [
    (lambda s: s["provinces"].update({"Hubei!": {"upload_interval_hours": 24}}),
     "site.yml: site.provinces: Value error, province name 'Hubei!' must match"),
    (lambda s: s["provinces"]["hubei"].update(upload_interval_hours=0),
     "site.yml: site.provinces.hubei.upload_interval_hours: Input should be greater than 0"),
    (lambda s: s["provinces"]["hubei"].update(upload_interval_hours="daily"),
     "site.yml: site.provinces.hubei.upload_interval_hours: Input should be a valid number"),
    (lambda s: s["provinces"].update(hunan={"upload_interval_hours": 6, "interval": 6}),
     "site.yml: site.provinces.hunan.interval: unknown key"),
    (lambda s: s["components"]["access-gateway"].update(metrics_port=8081),
     "site.components.access-gateway: Value error, metrics_port 8081 is the component's own "
     "port"),
    (lambda s: s["components"]["access-gateway"].update(metrics_port=9113),
     "site.components.access-gateway.metrics_port: no tcp flow lets monitoring reach "
     "app:9113 (mon1->app1, mon1->app2)"),
    (lambda s: s.update(flows=[f for f in s["flows"] if f["name"] != "mgmt-component-metrics"]),
     "site.components.access-gateway.metrics_port: no tcp flow lets monitoring reach app:9112"),
])
def test_bad_province_or_metrics_port_is_one_line_exit_2(capsys, site_copy, change, expected):
    edit_site(site_copy, change)
    code, lines = validate(capsys, site_copy)
    assert code == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith("opsctl: ") and expected in lines[0], lines


def test_the_gateways_province_pattern_is_the_site_models():
    """A province the site names is one the gateway accepts (and labels by name)."""
    tree = ast.parse((ROOT / "components" / "access-gateway" / "main.py").read_text())
    pattern = next(node.value.args[0].value for node in tree.body
                   if isinstance(node, ast.Assign) and node.targets[0].id == "PROVINCE")
    assert pattern == NAME
    assert all(re.match(pattern, name) for name in load_site("reference").spec.provinces)


def render_scrape_config(site_name: str | Path = "reference") -> dict:
    site = load_site(site_name)
    raw = yaml.safe_load((site.directory / "group_vars/all/site.yml").read_text())["site"]
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=False,
                             undefined=jinja2.StrictUndefined)
    env.filters["default"] = lambda value, fallback=None: (
        fallback if isinstance(value, jinja2.Undefined) else value)
    env.filters["bool"] = bool
    template = env.from_string(
        (ROOT / "roles" / "prometheus" / "templates" / "prometheus.yml.j2").read_text())
    monitoring = sorted(site.groups["monitoring"])
    text = template.render(
        ansible_managed="test", site=raw, inventory_hostname=monitoring[0],
        groups={g: sorted(m) for g, m in site.groups.items()} | {"all": sorted(site.hosts)},
        hostvars={h.name: {"ansible_host": str(h.address)} for h in site.hosts.values()},
        prometheus_scrape_interval="15s", prometheus_evaluation_interval="15s",
        prometheus_alertmanager_hosts=monitoring, prometheus_alertmanager_port=9093,
        prometheus_listen_address="172.31.10.11", prometheus_port=9090,
        prometheus_agent_scheme="https", prometheus_agent_ca_file="/ca.crt",
        prometheus_agent_username="prometheus", prometheus_agent_port=9110,
        prometheus_agent_hosts=sorted(site.hosts),
        prometheus_national=raw.get("national"),
        prometheus_national_series=role_default("prometheus", "prometheus_national_series"),
        prometheus_remote_write_receiver=bool(raw.get("provinces")),
        prometheus_out_of_order_window=role_default("prometheus",
                                                    "prometheus_out_of_order_window"))
    return yaml.safe_load(text)


def test_prometheus_scrapes_the_gateway_on_every_app_host():
    jobs = {job["job_name"]: job for job in render_scrape_config()["scrape_configs"]}
    gateway = jobs["access-gateway"]
    assert [(c["targets"], c["labels"]) for c in gateway["static_configs"]] == [
        (["172.31.20.21:9112"], {"host": "app1"}), (["172.31.20.22:9112"], {"host": "app2"})]
    assert "query-service" not in jobs  # no metrics_port: no job
    assert "opsctl-agent" in jobs


def test_a_site_without_component_metrics_renders_no_component_job():
    jobs = {job["job_name"] for job in render_scrape_config("example-bastion")["scrape_configs"]}
    assert jobs == {"prometheus", "alertmanager", "opsctl-agent"}


def test_promtool_accepts_the_rendered_scrape_config(tmp_path):
    """What the role's `validate: promtool check config --syntax-only` will say."""
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(render_scrape_config()))
    done = subprocess.run([promtool(), "check", "config", "--syntax-only", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
