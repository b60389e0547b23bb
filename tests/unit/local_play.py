"""Run one of the project's roles (or a part of it) on localhost with ansible-playbook, with
stand-in commands first on PATH: how a role's own modules are tested against their programs
(psql, nft) without a host."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def play_on_localhost(directory: Path, role: str,
                      stand_ins: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`directory` holds roles/ROLE (made by the caller); each stand-in is a script put on
    PATH under its name."""
    bin_dir = directory / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, script in stand_ins.items():
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(0o755)
    (directory / "play.yml").write_text("- hosts: localhost\n  gather_facts: false\n"
                                        f"  roles: [{role}]\n")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "ANSIBLE_HOME": str(directory / "home"), "ANSIBLE_LOCAL_TEMP": str(directory / "tmp"),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_PYTHON_INTERPRETER": sys.executable}
    return subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-c", "local",
                           "-i", "localhost,", "play.yml"], cwd=directory, env=env,
                          capture_output=True, text=True, timeout=240)
