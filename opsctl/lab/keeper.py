"""A lab host's power button: runs the host's systemd-nspawn, and boots it again when the
container asks for a reboot, as a real machine comes back from `systemctl reboot`.

nspawn leaves a reboot to whoever started it: it exits with status 133, and Debian's
systemd-nspawn@.service restarts it for that status alone (RestartForceExitStatus=133). This
is the same rule for a lab that `lab up` starts by hand. Any other exit (power-off, `lab stop`,
`lab down`, a crash) ends the keeper too. Each new nspawn's PID goes where `lab` commands look
for it: the host's `nspawn.pid` and the lab's state. A host the lab no longer lists (stopped
or taken down meanwhile) is not booted again.

    python -m opsctl.lab.keeper LAB_DIR HOST -- SYSTEMD-NSPAWN-ARGV...
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from opsctl.lab import cgroups

REBOOT = 133
PID_FILE = "nspawn.pid"


def pid_file(lab: Path, host: str) -> Path:
    return lab / "hosts" / host / PID_FILE


def _still_listed(lab: Path, host: str) -> bool:
    from opsctl.lab.lifecycle import LabState  # noqa: PLC0415 - only when a host reboots

    state = LabState.load(lab)
    return state is not None and host in state.pids


def _record(lab: Path, host: str, pid: int, rebooted: bool) -> None:
    path = pid_file(lab, host)
    tmp = path.with_name(f".{PID_FILE}.tmp")
    tmp.write_text(f"{pid}\n")
    tmp.replace(path)
    if rebooted:
        from opsctl.lab.lifecycle import LabState  # noqa: PLC0415

        state = LabState.load(lab)
        if state is not None:
            state.pids[host] = pid
            state.save(lab)


def keep(lab: Path, host: str, argv: list[str]) -> int:
    """Run nspawn until it exits other than for a reboot; its last exit status."""
    rebooted = False
    while True:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        _record(lab, host, proc.pid, rebooted)
        status = proc.wait()
        if status != REBOOT or not _still_listed(lab, host):
            return status
        print(f"opsctl lab keeper: {host} rebooted (nspawn exit {REBOOT}): booting it again",
              flush=True)
        rebooted = True


def main(args: list[str]) -> int:
    if len(args) < 4 or args[2] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    # the terminal's signals are not the container's: only nspawn's own exit ends this
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # nspawn makes the container's cgroups under its own: each host's must be its own
    machine = next(a.split("=", 1)[1] for a in args[3:] if a.startswith("--machine="))
    cgroups.enter(machine)
    return keep(Path(args[0]), args[1], args[3:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
