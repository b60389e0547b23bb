"""`opsctl site validate`: good input passes; bad input gives one-line errors and exit 2."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from opsctl.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def edit(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


def site_yml(site: Path) -> Path:
    return site / "group_vars" / "all" / "site.yml"


def test_reference_site_is_valid(capsys):
    code, out, err = run(capsys, "site", "validate", "reference")
    assert code == 0, err
    assert "7 hosts" in out


def test_site_show_json_lists_every_host_by_zone(capsys):
    code, out, _ = run(capsys, "site", "show", "reference", "--output", "json")
    assert code == 0
    data = json.loads(out)
    by_zone = {z["name"]: {h["name"] for h in z["hosts"]} for z in data["zones"]}
    assert by_zone["mgmt"] == {"control", "mon1"}
    assert by_zone["internet"] == {"lb1", "app1", "app2"}
    assert by_zone["secure"] == {"db1", "db2", "bak1"}
    assert by_zone["public"] == set()


def assert_one_line_errors(err: str, *expected: str) -> list[str]:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    assert lines, "no error printed"
    for line in lines:
        # opsctl: FILE: KEY: reason
        assert re.match(r"^opsctl: \S+\.yml: \S.*: \S", line), line
    for fragment in expected:
        assert any(fragment in line for line in lines), (fragment, lines)
    return lines


def test_missing_zone(capsys, site_copy):
    edit(site_yml(site_copy), lambda d: d["site"]["zones"].pop("secure"))
    code, _, err = run(capsys, "site", "validate", str(site_copy))
    assert code == 2
    assert_one_line_errors(err, "hosts.yml: all.children.secure.hosts.db1: host db1 is in no zone")


def test_address_outside_its_zone(capsys, site_copy):
    def change(d):
        d["all"]["children"]["internet"]["hosts"]["app2"]["ansible_host"] = "172.31.30.22"
    edit(site_copy / "hosts.yml", change)
    code, _, err = run(capsys, "site", "validate", str(site_copy))
    assert code == 2
    assert_one_line_errors(
        err, "all.children.internet.hosts.app2.ansible_host: 172.31.30.22 is outside zone "
             "internet (172.31.20.0/24)")


def test_duplicate_address(capsys, site_copy):
    def change(d):
        d["all"]["children"]["secure"]["hosts"]["db2"]["ansible_host"] = "172.31.30.11"
    edit(site_copy / "hosts.yml", change)
    code, _, err = run(capsys, "site", "validate", str(site_copy))
    assert code == 2
    assert_one_line_errors(err, "secure.hosts.db2.ansible_host: duplicate address 172.31.30.11 "
                                "(also host db1)")


def test_duplicate_host_name_in_one_group(capsys, site_copy):
    hosts = site_copy / "hosts.yml"
    hosts.write_text(hosts.read_text().replace(
        "        app2:\n          ansible_host: 172.31.20.22\n",
        "        app2:\n          ansible_host: 172.31.20.22\n"
        "        app2:\n          ansible_host: 172.31.20.23\n", 1))
    code, _, err = run(capsys, "site", "validate", str(site_copy))
    assert code == 2
    assert_one_line_errors(err, "duplicate key 'app2'")


def test_flow_to_unknown_group(capsys, site_copy):
    edit(site_yml(site_copy), lambda d: d["site"]["flows"][2].update({"to": "dbx"}))
    code, _, err = run(capsys, "site", "validate", str(site_copy))
    assert code == 2
    assert_one_line_errors(err, "site.yml: site.flows[2].to: unknown group or zone 'dbx'")


def test_flow_with_invalid_port(capsys, site_copy):
    edit(site_yml(site_copy), lambda d: d["site"]["flows"][0].update({"ports": [443, 70000]}))
    code, _, err = run(capsys, "site", "validate", str(site_copy))
    assert code == 2
    assert_one_line_errors(err, "site.flows[0].ports: Value error, port 70000 is outside 1-65535")


def test_required_group_missing(capsys, site_copy):
    def drop_backup(d):
        d["all"]["children"].pop("backup")

    edit(site_copy / "hosts.yml", drop_backup)
    code, _, err = run(capsys, "site", "validate", str(site_copy))
    assert code == 2
    assert_one_line_errors(err, "all.children.backup: required group is missing")


def test_host_in_two_zones(capsys, site_copy):
    edit(site_copy / "hosts.yml",
         lambda d: d["all"]["children"]["mgmt"]["hosts"].update({"db1": None}))
    code, _, err = run(capsys, "site", "validate", str(site_copy))
    assert code == 2
    assert_one_line_errors(err, "host db1 is in more than one zone: mgmt, secure")


def test_unknown_key_in_site(capsys, site_copy):
    edit(site_yml(site_copy), lambda d: d["site"]["zones"]["mgmt"].update({"cdir": "x"}))
    code, _, err = run(capsys, "site", "validate", str(site_copy))
    assert code == 2
    assert_one_line_errors(err, "site.zones.mgmt.cdir: unknown key")


def test_malformed_yaml(capsys, site_copy):
    site_yml(site_copy).write_text("site:\n  name: [unclosed\n  zones: {}\n")
    code, _, err = run(capsys, "site", "validate", str(site_copy))
    assert code == 2
    lines = assert_one_line_errors(err, "malformed YAML")
    assert len(lines) == 1 and "site.yml: line " in lines[0]


def test_empty_file(capsys, site_copy):
    (site_copy / "hosts.yml").write_text("")
    code, _, err = run(capsys, "site", "validate", str(site_copy))
    assert code == 2
    lines = assert_one_line_errors(err, "hosts.yml: (root): file is empty")
    assert len(lines) == 1


def test_every_problem_is_reported_not_only_the_first(capsys, site_copy):
    def change(d):
        d["all"]["children"]["internet"]["hosts"]["app2"]["ansible_host"] = "172.31.30.22"
        d["all"]["children"]["secure"]["hosts"]["db2"]["ansible_host"] = "172.31.30.11"
    edit(site_copy / "hosts.yml", change)
    code, _, err = run(capsys, "site", "validate", str(site_copy))
    assert code == 2
    assert len(assert_one_line_errors(err, "outside zone", "duplicate address")) == 2


def test_unknown_site_is_a_clear_error(capsys):
    code, _, err = run(capsys, "site", "validate", "no-such-site")
    assert code == 2
    assert "Traceback" not in err and "site 'no-such-site'" in err
