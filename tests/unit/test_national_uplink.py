"""A province's push to the national node, the site side (docs/national-view.md):
`site.national` validated with one-line errors, the remote_write the prometheus role renders
from it (only alerts and site:* aggregates travel), the national Prometheus taking remote
writes only where the site has provinces, and a credential per province whose hash the
national gateway checks. (The gateway's receiving end: test_national_metrics_write.py.)"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest
import yaml
from gateway_code import gateway_module
from test_access_gateway_monitoring import edit_site, render_scrape_config, validate
from test_monitor_rules import RULES, metric_names_in_rules, promtool

from opsctl.roles import role_default
from opsctl.site import load_site
from opsctl.site.new import new_site

ROOT = Path(__file__).resolve().parents[2]
NATIONAL_LB = "172.31.20.11"


def make_province(root: Path, url: str = f"https://{NATIONAL_LB}/gateway/metrics/write",
                  ca: str | None = "national-ca.crt", flow: bool = True) -> Path:
    """A province made by `opsctl site new` from the reference (uplink to its lb1), pushing to
    the national node as `url` says."""
    site = new_site("gansu", inventory_root=root).directory
    if ca:
        (site / ca).write_text("-----BEGIN CERTIFICATE-----\n")

    def change(s: dict) -> None:
        s["national"] = {"url": url, "ca_file": ca or "absent.crt"}
        if not flow:
            s["flows"] = [f for f in s["flows"] if f["name"] != "uplink-national"]
    edit_site(site, change)
    return site


def test_a_province_with_its_national_ca_and_uplink_flow_loads(tmp_path):
    directory = make_province(tmp_path)
    site = load_site(directory)
    assert site.national_ca_file == directory / "national-ca.crt"
    assert load_site("reference").national_ca_file is None


@pytest.mark.parametrize(("change", "expected"), [
    (dict(ca=None), "site.national.ca_file: "),
    (dict(flow=False), "site.national.url: no tcp flow lets gansu-mon1 reach 172.31.20.11:443 "
                       "(an external endpoint); add it to site.flows"),
    (dict(url="http://172.31.20.11/gateway/metrics/write"),
     "site.national.url: String should match pattern"),
    (dict(url=f"https://{NATIONAL_LB}:99999/gateway/metrics/write"),
     "site.national.url: the port is not a number in 1-65535"),
    (dict(url=f"https://{NATIONAL_LB}:8443/gateway/metrics/write"),
     "site.national.url: no tcp flow lets gansu-mon1 reach 172.31.20.11:8443"),
])
def test_a_bad_national_push_is_one_line_exit_2(capsys, tmp_path, change, expected):
    code, lines = validate(capsys, make_province(tmp_path, **change))
    assert code == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith("opsctl: ") and expected in lines[0], lines


def test_a_province_pushes_alerts_and_aggregates_with_its_credential(tmp_path):
    config = render_scrape_config(make_province(tmp_path / "inventory"))
    [push] = config["remote_write"]
    assert push["url"] == f"https://{NATIONAL_LB}/gateway/metrics/write"
    assert push["basic_auth"] == {"username": "gansu",
                                  "password_file": "/etc/prometheus/national-uplink.password"}
    assert push["tls_config"] == {"ca_file": "/etc/prometheus/national-ca.crt"}
    assert config["global"]["external_labels"] == {"site": "gansu"}
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run([promtool(), "check", "config", "--syntax-only", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_national_node_and_an_unattached_province_push_nothing():
    assert "remote_write" not in render_scrape_config("reference")
    assert "remote_write" not in render_scrape_config("example-bastion")


def test_only_alerts_and_site_aggregates_travel():
    """The keep regex (anchored, as Prometheus anchors it) passes ALERTS and every recording
    rule named site:*, and no metric any rule or agent names."""
    keep = role_default("prometheus", "prometheus_national_series")
    kept = re.compile(f"^(?:{keep})$")
    groups = yaml.safe_load((RULES / "opsctl.rules.yml").read_text())["groups"]
    records = {r["record"] for g in groups for r in g["rules"] if "record" in r}
    assert records and all(r.startswith("site:") for r in records)
    assert all(kept.match(r) for r in records | {"ALERTS"})
    assert not [m for m in metric_names_in_rules() | {"ALERTS_FOR_STATE"} if kept.match(m)]


def render_prometheus_args(provinces: dict) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["default"] = lambda value, fallback=None: (
        fallback if isinstance(value, jinja2.Undefined) else value)
    env.filters["bool"] = bool
    receiver = env.from_string(yaml.safe_load(
        (ROOT / "roles/prometheus/defaults/main.yml").read_text())
        ["prometheus_remote_write_receiver"]).render(site={"provinces": provinces})
    return env.from_string((ROOT / "roles/prometheus/templates/default.j2").read_text()).render(
        ansible_managed="test", prometheus_listen_address="172.31.10.11",
        prometheus_port=9090, prometheus_retention="30d",
        prometheus_remote_write_receiver=receiver == "True")


def test_only_a_node_with_provinces_takes_remote_writes():
    assert "--web.enable-remote-write-receiver" in render_prometheus_args({"gansu": {}})
    assert "--web.enable-remote-write-receiver" not in render_prometheus_args({})


def test_the_national_node_makes_one_credential_per_province_its_gateway_checks(state_dir):
    from opsctl.secrets import ensure_secret, ensure_site_secrets, uplink_secret

    secrets = ensure_site_secrets("reference", ["gansu", "hubei"])
    sys.path.insert(0, str(ROOT / "plugins" / "filter"))
    try:
        from opsctl_uplink import opsctl_uplink_users
    finally:
        sys.path.remove(str(ROOT / "plugins" / "filter"))
    users = opsctl_uplink_users({"gansu": {}, "hubei": {}}, str(secrets))
    assert sorted(users) == ["gansu", "hubei"] and users["gansu"] != users["hubei"]
    assert all(h.startswith("$2") for h in users.values())  # bcrypt: never the password
    # a second run keeps them (the gateway's configuration does not change every apply)
    ensure_site_secrets("reference", ["gansu", "hubei"])
    assert opsctl_uplink_users({"gansu": {}, "hubei": {}}, str(secrets)) == users

    receiver = gateway_module("metrics_write").MetricsWrite(users, "http://127.0.0.1:9/api/v1/write")

    def basic(user: str, password: str) -> str:
        import base64
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    gansu = ensure_secret("reference", uplink_secret("gansu"))
    assert receiver.province(basic("gansu", gansu)) == "gansu"
    assert receiver.province(basic("gansu", gansu)) == "gansu"  # proven: the cached path
    assert receiver.province(basic("hubei", gansu)) is None  # gansu's password is not hubei's
    assert receiver.province(basic("gansu", gansu + "x")) is None
    assert receiver.province(basic("nobody", gansu)) is None
    assert receiver.province(None) is None
    assert receiver.province("Basic !!!") is None
    assert receiver.province("Bearer " + gansu) is None


def test_the_national_prometheus_takes_the_gateways_queues_out_of_order():
    """Two gateways' queues drain in no set order: the national node's TSDB takes samples
    within the window out of order; a province's does not need to."""
    tsdb = render_scrape_config("reference")["storage"]["tsdb"]
    assert tsdb == {"out_of_order_time_window": "2h"}
    assert "storage" not in render_scrape_config("example-bastion")


def test_the_relay_fetches_every_gateway_from_the_management_zone():
    import json

    site = load_site("reference")
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True)
    text = env.from_string(
        (ROOT / "roles/prometheus/templates/national-relay.json.j2").read_text()).render(
        site=yaml.safe_load((site.directory / "group_vars/all/site.yml").read_text())["site"],
        groups={g: sorted(m) for g, m in site.groups.items()},
        hostvars={h.name: {"ansible_host": str(h.address)} for h in site.hosts.values()},
        prometheus_relay_component=role_default("prometheus", "prometheus_relay_component"),
        prometheus_listen_address="172.31.10.11", prometheus_port=9090,
        prometheus_relay_interval=2)
    config = json.loads(text)
    assert config == {"gateways": ["http://172.31.20.21:9112", "http://172.31.20.22:9112"],
                      "prometheus": "http://172.31.10.11:9090/api/v1/write", "interval": 2}
    # the management zone reaches the gateways there: the flow Prometheus scrapes them by
    port = site.spec.components["access-gateway"].metrics_port
    assert any(f.sources == ("mgmt",) and set(f.destinations) == {"app"} and port in f.ports
               for f in site.flows)
    # and nothing outside the management zone reaches Prometheus
    assert not [f.name for f in site.flows if 9090 in f.ports and f.sources != ("mgmt",)]
