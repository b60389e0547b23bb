"""`opsctl site enrol P` and `opsctl site withdraw P`: one command writes both sides of a
province's push to the national node (docs/national-view.md), keeps the national site.yml's
comments, is idempotent, and refuses bad input in one line (exit 2) with nothing written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from opsctl.cli.main import main
from opsctl.pki import pki_dir
from opsctl.secrets import ensure_secret, secrets_dir, uplink_secret
from opsctl.site import load_site
from opsctl.site.enrol import enrol, withdraw
from opsctl.site.new import new_site

ROOT = Path(__file__).resolve().parents[2]
SITE_FILE = Path("group_vars/all/site.yml")
CA = "-----BEGIN CERTIFICATE-----\nnational\n-----END CERTIFICATE-----\n"


@pytest.fixture
def sites(tmp_path, state_dir):
    """A national node (a copy of the reference, with its CA in opsctl's state) and a
    province made from it by `site new`, in one inventory directory."""
    root = tmp_path / "inventory"
    shutil.copytree(ROOT / "inventory" / "reference", root / "reference")
    ca = pki_dir("reference") / "ca.crt"
    ca.parent.mkdir(parents=True)
    ca.write_text(CA)
    new_site("gansu", cidr_base="172.31.200.0/22", inventory_root=root)
    return root / "reference", root / "gansu"


def site_yml(directory: Path) -> dict:
    return yaml.safe_load((directory / SITE_FILE).read_text())["site"]


def snapshot(*directories: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for d in directories for p in sorted(d.rglob("*")) if p.is_file()}


def run_cli(capsys, *args: str) -> tuple[int, list[str], str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return int(exc.value.code or 0), [line for line in err.splitlines() if line.strip()], out


def test_enrol_writes_both_sides(sites):
    national, province = sites
    made = enrol(str(province), str(national))
    assert made.changed and made.url == "https://172.31.20.11/gateway/metrics/write"

    nat = site_yml(national)
    assert nat["provinces"]["gansu"] == {"title": "甘肃省", "upload_interval_hours": 24}
    assert nat["external"] == {
        "gansu-internet": {"cidr": "172.31.201.0/24",
                           "purpose": "province gansu's uplink (opsctl site enrol)"},
        "gansu-mgmt": {"cidr": "172.31.200.0/24",
                       "purpose": "province gansu's uplink (opsctl site enrol)"}}
    [flow] = [f for f in nat["flows"] if f["name"] == "uplink-gansu"]
    assert (flow["from"], flow["to"], flow["ports"]) == (["gansu-internet", "gansu-mgmt"],
                                                         "lb", [443])
    # the operator's comments stay
    text = (national / SITE_FILE).read_text()
    assert "# The whitelist. The boundary firewall and every host firewall" in text
    # the flow goes after the last one, above the comment that introduces the next key
    assert text.index("- name: uplink-gansu") < text.index("# The platform's data") \
        < text.index("  database:")

    prov = site_yml(province)
    assert prov["national"] == {"url": made.url, "ca_file": "national-ca.crt"}
    assert (province / "national-ca.crt").read_text() == CA
    password = ensure_secret("reference", uplink_secret("gansu"))
    assert (secrets_dir("gansu") / "national_uplink").read_text().strip() == password
    assert (secrets_dir("reference") / f"{uplink_secret('gansu')}.bcrypt").is_file()
    assert (secrets_dir("gansu") / "national_uplink").stat().st_mode & 0o077 == 0

    # both load; the province's monitoring host may reach the national balancer, and the
    # national balancer admits the province's uplink
    assert load_site(province).national_ca_file == province / "national-ca.crt"
    loaded = load_site(national)
    uplink = next(f for f in loaded.flows if f.name == "uplink-gansu")
    assert uplink.destinations == ("lb",)


def test_enrol_twice_changes_nothing(sites):
    national, province = sites
    enrol(str(province), str(national))
    before = snapshot(national, province, secrets_dir("gansu"), secrets_dir("reference"))
    again = enrol(str(province), str(national))
    assert not again.changed
    assert snapshot(national, province, secrets_dir("gansu"),
                    secrets_dir("reference")) == before


def test_a_province_new_to_the_list_is_added_and_withdraw_restores_the_national_file(
        sites, tmp_path):
    national, _ = sites
    other = new_site("testprov", cidr_base="172.31.204.0/22",
                     inventory_root=national.parent).directory
    original = (national / SITE_FILE).read_bytes()
    enrol(str(other), str(national), upload_interval_hours=6)
    assert site_yml(national)["provinces"]["testprov"]["upload_interval_hours"] == 6
    done = withdraw(str(other), str(national))
    assert "reference: provinces.testprov" in done.removed
    assert "reference: flows.uplink-testprov" in done.removed
    assert (national / SITE_FILE).read_bytes() == original
    assert "national" not in site_yml(other)
    assert not (other / "national-ca.crt").exists()
    assert not (secrets_dir("testprov") / "national_uplink").exists()
    assert not (secrets_dir("reference") / uplink_secret("testprov")).exists()
    assert withdraw(str(other), str(national)).removed == []


def test_no_national_ca_is_one_line_exit_2_and_nothing_written(sites, capsys):
    national, province = sites
    (pki_dir("reference") / "ca.crt").unlink()
    before = snapshot(national, province)
    code, lines, _ = run_cli(capsys, "site", "enrol", str(province), "--national", str(national))
    assert code == 2 and len(lines) == 1, lines
    assert "has no CA yet" in lines[0] and "opsctl apply --site reference" in lines[0]
    assert snapshot(national, province) == before
    assert not (secrets_dir("gansu") / "national_uplink").exists()


def test_a_province_without_an_uplink_is_one_line_exit_2(sites, capsys):
    national, _ = sites
    lone = new_site("lonely", cidr_base="172.31.208.0/22", national_gateway="none",
                    inventory_root=national.parent).directory
    before = snapshot(national, lone)
    code, lines, _ = run_cli(capsys, "site", "enrol", str(lone), "--national", str(national))
    assert code == 2 and len(lines) == 1, lines
    assert "has no external `national`" in lines[0]
    assert snapshot(national, lone) == before


def test_an_enrolment_the_national_site_refuses_writes_nothing(sites, capsys):
    """A national node without an access gateway cannot take pushes."""
    national, province = sites
    data = yaml.safe_load((national / SITE_FILE).read_text())
    del data["site"]["components"]["access-gateway"]
    (national / SITE_FILE).write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    before = snapshot(national, province)
    code, lines, _ = run_cli(capsys, "site", "enrol", str(province), "--national", str(national))
    assert code == 2 and len(lines) == 1, lines
    assert "no access-gateway component" in lines[0]
    assert snapshot(national, province) == before


def test_the_cli_says_what_it_wrote_and_what_to_run_next(sites, capsys):
    national, province = sites
    code, _, out = run_cli(capsys, "site", "enrol", str(province), "--national", str(national))
    assert code == 0
    assert "site gansu: enrolled in reference, pushing to https://172.31.20.11/gateway/" in out
    assert "next: opsctl apply --site reference && opsctl apply --site gansu" in out
    code, _, out = run_cli(capsys, "site", "enrol", str(province), "--national", str(national))
    assert "already enrolled" in out
    code, _, out = run_cli(capsys, "site", "withdraw", str(province), "--national",
                           str(national))
    assert code == 0 and "removed reference: flows.uplink-gansu" in out
