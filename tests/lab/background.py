"""Lab work run in the background of the test session, beside tests that leave a core idle.

The unit tests run in one process, on one of the machine's two cores: the reference lab's
bring-up (mirror, lab up, the scan of the fresh lab, the first converge) starts when the
tests are collected and runs beside them. The province's bring-up starts when the first
module that mostly waits on the clock (alert `for:` periods, cron ticks) begins. A fixture
that needs a step's result waits for that step.

Each step is an `opsctl` command in a child process, with the environment taken when its
chain was made: the unit tests change this process's environment (state and cache
directories) while the chain runs. A chain runs its steps one after another and stops at the
first that fails; waiting for a later step then answers with the failed one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Step:
    name: str
    argv: tuple[str, ...]  # after `python -m opsctl`
    ok: tuple[int, ...] = (0,)
    timeout: float = 1800


@dataclass(frozen=True)
class Done:
    step: str
    returncode: int
    stdout: str
    stderr: str
    started: float  # time.monotonic()
    seconds: float
    ok: bool

    def tail(self, size: int = 4000) -> str:
        return f"{self.step} exited {self.returncode}:\n{self.stdout[-size:]}{self.stderr[-size:]}"


@dataclass
class Chain:
    name: str
    steps: Sequence[Step]
    env: dict[str, str]
    cleanup: Callable[[], object] = lambda: None
    site: Any = None  # the site the chain brings up
    done: dict[str, Done] = field(default_factory=dict)
    _thread: threading.Thread | None = None
    _child: subprocess.Popen[str] | None = None
    _stopping: bool = False
    _cleaned: bool = False
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"lab-{self.name}",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        for step in self.steps:
            try:
                result = self._one(step)
            except Exception as exc:  # noqa: BLE001 - a waiting fixture must hear of it
                result = Done(step.name, -1, "", repr(exc), time.monotonic(), 0, False)
            with self._changed:
                self.done[step.name] = result
                self._changed.notify_all()
            if not result.ok:
                return

    def _one(self, step: Step) -> Done:
        started = time.monotonic()
        with self._changed:
            if self._stopping:
                return Done(step.name, -1, "", "the session stopped first", started, 0, False)
            # its own process group: stopping it stops the ansible-playbook it started too
            self._child = subprocess.Popen([sys.executable, "-m", "opsctl", *step.argv],
                                           env=self.env, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True,
                                           start_new_session=True)
        try:
            out, err = self._child.communicate(timeout=step.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self._child.pid, signal.SIGKILL)
            out, err = self._child.communicate()
            err += f"\n{step.name}: killed after {step.timeout:.0f} s"
        code = self._child.returncode
        return Done(step.name, code, out, err, started, round(time.monotonic() - started, 1),
                    code in step.ok and not self._stopping)

    def wait(self, step: str) -> Done:
        """The step's result, or the result of the earlier step that stopped the chain."""
        if step not in {s.name for s in self.steps}:
            raise KeyError(f"chain {self.name} has no step {step}")
        self.start()
        with self._changed:
            while True:
                if step in self.done:
                    return self.done[step]
                failed = [d for d in self.done.values() if not d.ok]
                if failed:
                    return failed[0]
                self._changed.wait(timeout=5)

    def stop(self) -> None:
        """Stop the running step (its child, by PID), wait for the thread, clean up: once,
        whoever asks first (the fixture done with the lab, or the session's end)."""
        with self._changed:
            if self._cleaned:
                return
            self._stopping = True
            child = self._child
        if child is not None and child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
        if self._thread is not None:
            self._thread.join(timeout=120)
            self._cleaned = True
            self.cleanup()


CHAINS: dict[str, Chain] = {}
STARTED = time.monotonic()  # the session's start, near enough: this module loads at collection


def chain(name: str) -> Chain | None:
    return CHAINS.get(name)


def summary() -> list[str]:
    """A line per step that ran: when it started in the session, how long it took."""
    return [f"{one.name} {d.step}: started at {d.started - STARTED:.0f} s, took {d.seconds:.0f} s"
            f"{'' if d.ok else f' (failed: exit {d.returncode})'}"
            for one in CHAINS.values() for d in one.done.values()]


def stop_all() -> None:
    for one in CHAINS.values():
        one.stop()
