"""`opsctl apply` refuses bad input before Ansible starts: one line, exit 2, no run recorded."""

from __future__ import annotations

import pytest
import yaml

from opsctl.cli.main import main


def run(capsys, *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    _, err = capsys.readouterr()
    return int(exc.value.code or 0), err


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OPSCTL_CACHE_DIR", str(tmp_path / "cache"))


def assert_nothing_ran(state_dir):
    assert not (state_dir / "runs").exists()


def test_unknown_limit_names_the_host(capsys, state_dir, empty_cache):
    code, err = run(capsys, "apply", "--site", "reference", "--limit", "app9")
    assert code == 2
    assert err.strip() == ("opsctl: --limit: app9: no such host in site reference "
                           "(hosts: mon1, lb1, app1, app2, db1, db2, bak1)")
    assert_nothing_ran(state_dir)


def test_unknown_playbook(capsys, state_dir, empty_cache):
    code, err = run(capsys, "apply", "--site", "reference", "--playbook", "nope.yml")
    assert code == 2
    assert "playbook 'nope.yml'" in err and len(err.strip().splitlines()) == 1
    assert_nothing_ran(state_dir)


def test_missing_mirror_key_says_what_to_run(capsys, state_dir, empty_cache):
    from opsctl.reference_components.build import build_reference

    build_reference()  # the site's component artifacts exist; only the mirror is missing
    code, err = run(capsys, "apply", "--site", "reference")
    assert code == 2
    assert "opsctl mirror build" in err
    assert_nothing_ran(state_dir)


def test_invalid_site_stops_before_anything(capsys, state_dir, empty_cache, site_copy):
    hosts = site_copy / "hosts.yml"
    data = yaml.safe_load(hosts.read_text())
    data["all"]["children"]["internet"]["hosts"]["app2"]["ansible_host"] = "172.31.20.21"
    hosts.write_text(yaml.safe_dump(data))
    code, err = run(capsys, "apply", "--site", str(site_copy))
    assert code == 2
    assert "duplicate" in err and "172.31.20.21" in err
    assert_nothing_ran(state_dir)


def test_retry_failed_without_history(capsys, state_dir, empty_cache):
    code, err = run(capsys, "apply", "--site", "reference", "--retry-failed")
    assert code == 2
    assert "no earlier run" in err


def test_every_tag_a_finding_tells_to_run_is_accepted():
    """`opsctl harden --tags X` / `opsctl apply --tags X` printed under a finding must pass
    the tag check of the playbook that command runs."""
    from pathlib import Path

    from opsctl.apply.tags import playbook_tags
    from security.schema import load_catalog

    root = Path(__file__).resolve().parents[2]
    roles = root / "roles"
    harden = playbook_tags(root / "playbooks" / "hardening.yml", roles)
    site = playbook_tags(root / "playbooks" / "site.yml", roles)
    assert harden is not None and site is not None
    remediations = [c.spec.remediation for c in load_catalog()]
    assert {r.tag for r in remediations if r.tag} - harden == set()
    assert {r.apply for r in remediations if r.apply} - site == set()


def test_limit_takes_ansibles_comma_list_and_names_the_unknown_host(capsys, state_dir,
                                                                    empty_cache):
    code, err = run(capsys, "apply", "--site", "reference", "--limit", "app1,app9", "-l", "db1")
    assert code == 2
    assert err.strip().startswith("opsctl: --limit: app9: no such host in site reference")
    assert_nothing_ran(state_dir)
