"""Running the machine's commands for the lab (the edge where subprocess lives)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from opsctl.errors import LabError


def run(cmd: Sequence[str], *, input: str | None = None, check: bool = True,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(cmd), input=input, capture_output=True, text=True,
                            timeout=timeout, check=False)
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise LabError(f"{' '.join(cmd)}: exit {result.returncode}: "
                       f"{detail[-1] if detail else 'no output'}")
    return result


def in_netns(netns: str, cmd: Sequence[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return run(["ip", "netns", "exec", netns, *cmd], **kwargs)
