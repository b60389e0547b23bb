"""The mirror's package list comes from the roles' `*_packages` defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsctl.errors import InvalidInput
from opsctl.lab.image import INCLUDE
from opsctl.mirror.build import request_hash
from opsctl.mirror.packages import requested_packages, role_packages

ROOT = Path(__file__).resolve().parents[2]


def write_role(roles: Path, name: str, text: str) -> None:
    (roles / name / "defaults").mkdir(parents=True)
    (roles / name / "defaults" / "main.yml").write_text(text)


def test_each_roles_package_lists_are_collected(tmp_path):
    write_role(tmp_path, "base", "base_packages: [sudo, chrony]\nbase_user: ops\n")
    write_role(tmp_path, "lb", "lb_packages: [nginx]\nlb_extra_packages: [ssl-cert]\n")
    assert role_packages(tmp_path) == {"base": ["sudo", "chrony"], "lb": ["nginx", "ssl-cert"]}
    wanted = requested_packages(tmp_path)
    assert {"sudo", "chrony", "nginx", "ssl-cert"} <= set(wanted)
    assert set(INCLUDE) <= set(wanted), "the image's own packages stay upgradable offline"
    assert wanted == sorted(wanted)


def test_a_package_list_that_is_not_a_list_is_refused_with_file_and_key(tmp_path):
    write_role(tmp_path, "lb", "lb_packages: nginx\n")
    with pytest.raises(InvalidInput) as exc:
        role_packages(tmp_path)
    assert "lb/defaults/main.yml: lb_packages: expected a list" in str(exc.value)


def test_the_mirror_is_rebuilt_when_the_list_changes():
    assert request_hash(["a", "b"]) != request_hash(["a", "b", "c"])
    assert request_hash(["a", "b"]) == request_hash(["a", "b"])


def test_the_projects_roles_ask_for_what_they_install():
    wanted = requested_packages(ROOT / "roles")
    for package in ("nftables", "chrony", "sudo"):
        assert package in wanted


def test_the_mirror_takes_the_newest_version_of_each_package_in_debian_order():
    from pathlib import Path

    from opsctl.mirror.build import _newest_per_package

    cached = [Path(n) for n in ("a_1.0-1_all.deb", "a_1%3a0.9-1_all.deb", "b_2.0_all.deb",
                                "b_10.0_all.deb", "d_1.0~rc1_all.deb", "d_1.0_all.deb")]
    assert [p.name for p in _newest_per_package(cached)] == [
        "a_1%3a0.9-1_all.deb", "b_10.0_all.deb", "d_1.0_all.deb"]
