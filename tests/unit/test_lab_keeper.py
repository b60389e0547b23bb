"""The lab host's keeper: a container that asks for a reboot (nspawn exits 133) is booted
again and its new nspawn recorded where `lab` commands look; any other exit ends it."""

from __future__ import annotations

from pathlib import Path

from opsctl.lab import keeper
from opsctl.lab.lifecycle import LabState
from opsctl.lab.plan import plan_lab
from opsctl.site import load_site


def fake_nspawn(tmp_path: Path, exits: list[int]) -> list[str]:
    """A stand-in for systemd-nspawn that exits with the next status of `exits` each run."""
    runs = tmp_path / "runs"
    runs.write_text("0")
    script = tmp_path / "nspawn"
    script.write_text(f"""#!/bin/sh
n=$(cat {runs}); echo $((n + 1)) > {runs}; echo $$ >> {tmp_path}/pids
set -- {' '.join(map(str, exits))}
shift $n
exit $1
""")
    script.chmod(0o755)
    return [str(script)]


def lab_with(tmp_path: Path, host: str) -> Path:
    lab = tmp_path / "lab"
    (lab / "hosts" / host).mkdir(parents=True)
    LabState(plan_lab(load_site("reference")), {host: 1}).save(lab)
    return lab


def test_a_reboot_boots_the_host_again_and_records_its_new_nspawn(tmp_path):
    lab = lab_with(tmp_path, "app1")
    status = keeper.keep(lab, "app1", fake_nspawn(tmp_path, [133, 133, 0]))
    assert status == 0
    pids = [int(p) for p in (tmp_path / "pids").read_text().split()]
    assert len(pids) == 3  # booted, rebooted twice, then powered off
    assert int(keeper.pid_file(lab, "app1").read_text()) == pids[-1]
    assert LabState.load(lab).pids["app1"] == pids[-1]


def test_a_power_off_or_a_crash_ends_it(tmp_path):
    lab = lab_with(tmp_path, "app1")
    assert keeper.keep(lab, "app1", fake_nspawn(tmp_path, [1, 0])) == 1
    assert len((tmp_path / "pids").read_text().split()) == 1
    assert LabState.load(lab).pids["app1"] == 1  # the first boot is `lab up`'s to record


def test_a_host_the_lab_no_longer_lists_is_not_booted_again(tmp_path):
    lab = lab_with(tmp_path, "app1")
    state = LabState.load(lab)
    state.pids.pop("app1")  # `lab stop app1` meanwhile
    state.save(lab)
    assert keeper.keep(lab, "app1", fake_nspawn(tmp_path, [133, 0])) == 133
    assert len((tmp_path / "pids").read_text().split()) == 1
