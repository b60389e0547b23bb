"""`opsctl site boundary`: the ruleset the network team installs on a real site's firewall."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from opsctl.cli.main import main
from opsctl.network.export import COLUMNS, RENDERERS, boundary_rows, export_boundary
from opsctl.network.flows import boundary_rules
from opsctl.network.nftables import boundary_ruleset
from opsctl.site import load_site


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


@pytest.fixture(scope="module")
def site():
    return load_site("reference")


def test_nftables_is_exactly_what_the_labs_router_runs(site):
    assert export_boundary(site, "nftables") == boundary_ruleset(boundary_rules(site))


def test_csv_has_one_row_per_rule_and_the_default_drop_last(site):
    rows = list(csv.DictReader(io.StringIO(export_boundary(site, "csv"))))
    assert tuple(rows[0]) == COLUMNS
    flows = [r for r in rows if not r["flow"].startswith("(")]
    assert [r["flow"] for r in flows] == [r.flow for r in boundary_rules(site)]
    https = next(r for r in rows if r["flow"] == "public-https")
    assert (https["from"], https["from_addresses"], https["to"], https["to_addresses"],
            https["proto"], https["ports"], https["action"]) == (
        "public", "172.31.99.0/24", "lb", "172.31.20.11/32", "tcp", "443", "accept")
    assert https["why"].startswith("the internet's users")
    last = rows[-1]
    assert last["flow"] == "(default)" and "drop and log" in last["action"]
    assert "opsctl-fw-drop" in last["action"]


def test_md_is_a_table_with_the_same_rows(site):
    md = export_boundary(site, "md")
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert table[0] == "| " + " | ".join(COLUMNS) + " |"
    assert len(table) - 1 == len(boundary_rows(site))
    assert "| (default) |" in table[-1]


def test_an_internet_public_zone_renders_as_outside_the_site(site_copy):
    path = site_copy / "group_vars/all/site.yml"
    path.write_text(path.read_text().replace("172.31.99.0/24", "any"))
    internet = load_site(site_copy)
    rows = list(csv.DictReader(io.StringIO(export_boundary(internet, "csv"))))
    https = next(r for r in rows if r["flow"] == "public-https")
    assert https["from_addresses"] == (
        "any address not in 172.31.10.0/24, 172.31.20.0/24, 172.31.30.0/24")
    assert "ip saddr != {" in export_boundary(internet, "nftables")


def test_every_format_has_its_own_renderer():
    assert set(RENDERERS) == {"nftables", "csv", "md"}


def test_cli_writes_the_file(capsys, tmp_path: Path, site):
    out = tmp_path / "fw.nft"
    code, stdout, err = run(capsys, "site", "boundary", "reference", "--out", str(out))
    assert code == 0, err
    assert stdout == ""
    assert out.read_text() == export_boundary(site, "nftables")


def test_cli_prints_csv(capsys):
    code, out, _ = run(capsys, "site", "boundary", "reference", "--format", "csv")
    assert code == 0
    assert out.splitlines()[0] == ",".join(COLUMNS)


@pytest.mark.parametrize(("args", "said"), [
    (("site", "boundary", "reference", "--format", "xml"), "unknown boundary format 'xml'"),
    (("site", "boundary", "nosuch"), "site 'nosuch'"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, args, said):
    code, out, err = run(capsys, *args)
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2
    assert len(lines) == 1 and said in lines[0], err
    assert out == ""
