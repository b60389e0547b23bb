"""Run one job: its own process group, a timeout that kills the whole group, an output tail,
retries with backoff, the cluster lock around all attempts, every attempt in the history.

The job's output (stdout and stderr together) goes to a memory file (memfd), of which the
last `tail_kib` KiB are kept: no reader thread, and no pipe held open by a grandchild. While
the job runs, the part before the tail is punched out of the file, so a chatty job holds its
tail in memory, not its whole output. (An unlinked temporary file on disk was the first
choice; creating one cost 0.5 ms on ext4 here, as much as starting the job itself.)

Killing the group is safe against PID reuse: the job's leader is only reaped (waited for)
after its group has been killed, so while we signal the group its id still names it.
When the leader exits on its own, whatever it left in its group is killed too: a job's
leftovers do not outlive it.
"""

from __future__ import annotations

import contextlib
import ctypes
import grp
import os
import pwd
import select
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from scheduler import history as h
from scheduler.engine import backoff_delay
from scheduler.lock import ClusterLock
from scheduler.spec import JobSpec

KILL_GRACE = 5.0  # seconds between SIGTERM and SIGKILL


@dataclass(frozen=True)
class Credentials:
    """Who a job runs as when it names a `user` other than the agent's own account."""

    uid: int
    gid: int
    groups: tuple[int, ...]
    env: dict[str, str]


def credentials(user: str | None) -> Credentials | None:
    """None when the job runs as the agent itself; raises LookupError or PermissionError."""
    if user is None:
        return None
    entry = pwd.getpwnam(user)  # KeyError if unknown
    if entry.pw_uid == os.geteuid():
        return None
    if os.geteuid() != 0:
        raise PermissionError(f"the agent runs as uid {os.geteuid()}, not root")
    groups = tuple(g.gr_gid for g in grp.getgrall() if user in g.gr_mem)
    env = {"HOME": entry.pw_dir, "USER": user, "LOGNAME": user,
           "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": os.environ.get("LANG", "C.UTF-8")}
    return Credentials(entry.pw_uid, entry.pw_gid, groups, env)


@dataclass(frozen=True)
class Attempt:
    outcome: str
    exit_code: int | None
    started: float
    ended: float
    output_tail: str
    reason: str = ""


TRIM_SLACK = 1 << 20  # bytes of output beyond the tail before the head is punched out
_FALLOC_FL_KEEP_SIZE, _FALLOC_FL_PUNCH_HOLE = 0x01, 0x02
_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long)


def _output_file() -> BinaryIO:
    try:
        fd = os.memfd_create("opsctl-job-output", os.MFD_CLOEXEC)
    except (AttributeError, OSError):  # no memfd: the same, on disk
        return tempfile.TemporaryFile()  # noqa: SIM115 - closed by Execution.finish()
    return os.fdopen(fd, "w+b")


def _forget_head(f: BinaryIO, keep: int) -> None:
    """Free everything but the last `keep` bytes (and their page). The file keeps its size
    and the job its write offset; the hole reads as zeros and takes no memory."""
    size = os.fstat(f.fileno()).st_size
    if size <= keep + TRIM_SLACK:
        return
    head = (size - keep) // 4096 * 4096
    # os has no fallocate with flags; a failure (a file system without holes) only costs memory
    _libc.fallocate(f.fileno(), _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, 0, head)


def _tail(f: BinaryIO, limit: int) -> str:
    size = f.seek(0, os.SEEK_END)
    f.seek(max(0, size - limit))
    return f.read().decode("utf-8", "replace")


def _exited(pid: int) -> bool:
    """Has the process exited? (It stays a zombie: not reaped, so its pid stays ours.)"""
    info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    return info is not None and info.si_pid == pid


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class Execution:
    """One attempt in progress; `kill(outcome, reason)` ends it from another thread."""

    def __init__(self, argv: tuple[str, ...], timeout: float, tail_kib: int = 16,
                 env: dict[str, str] | None = None, grace: float = KILL_GRACE,
                 clock: Callable[[], float] = time.time, user: str | None = None) -> None:
        self.argv, self.timeout, self.tail = argv, timeout, tail_kib * 1024
        self.user = user
        self.env, self.grace, self.clock = env, grace, clock
        self.pid: int | None = None
        self._proc: subprocess.Popen | None = None
        self._out: BinaryIO
        self._started = 0.0
        self._deadline = 0.0
        self._wake = threading.Event()
        self._killed: tuple[str, str] | None = None

    def kill(self, outcome: str, reason: str) -> None:
        if self._killed is None:
            self._killed = (outcome, reason)
        self._wake.set()

    def _wait(self, pid: int, until: float | None) -> bool:
        """Wait for the leader to exit until the monotonic deadline (or a kill request).

        With a pidfd (Linux >= 5.3) the wait sleeps in select() and wakes the moment the
        process exits; kill requests are noticed within 0.1 s. Otherwise it polls."""
        try:
            pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            return self._poll(pid, until)
        try:
            while not _exited(pid):
                if self._killed is not None:
                    return False
                left = 0.1 if until is None else until - time.monotonic()
                if left <= 0:
                    return False
                select.select([pidfd], [], [], min(0.1, left))
                self._trim()
            return True
        finally:
            os.close(pidfd)

    def _trim(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            _forget_head(self._out, self.tail)

    def _poll(self, pid: int, until: float | None) -> bool:
        pause = 0.002
        while not _exited(pid):
            if self._killed is not None:
                return False
            left = None if until is None else until - time.monotonic()
            if left is not None and left <= 0:
                return False
            self._wake.wait(pause if left is None else min(pause, left))
            self._trim()
            pause = min(pause * 2, 0.1)
        return True

    def run(self) -> Attempt:
        return self.start() or self.finish()

    def start(self) -> Attempt | None:
        """Start the process; an Attempt (error) when it could not start, else None.

        Split from `finish()` so the agent can start every job of a tick from its loop
        before any run thread exists: threads contending for the GIL would delay the starts."""
        self._started = self.clock()
        try:
            creds = credentials(self.user)
        except (KeyError, PermissionError) as exc:
            reason = exc.args[0] if isinstance(exc, PermissionError) else "no such account"
            return Attempt(h.ERROR, None, self._started, self.clock(), "",
                           f"cannot run as {self.user}: {reason}")
        switch: dict = {}
        if creds is not None:
            switch = {"user": creds.uid, "group": creds.gid, "extra_groups": list(creds.groups),
                      "cwd": "/", "env": {**creds.env, **(self.env or {})}}
        out = _output_file()
        try:
            self._proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True,
                                          close_fds=True, **{"env": self.env, **switch})
        except OSError as exc:
            out.close()
            return Attempt(h.ERROR, None, self._started, self.clock(), "",
                           f"cannot start {self.argv[0]}: {exc.strerror or exc}")
        self._out = out
        self.pid = self._proc.pid  # leader of its own session and process group
        self._deadline = time.monotonic() + self.timeout
        return None

    def finish(self) -> Attempt:
        """Wait for the started process (timeout, kill requests) and collect its Attempt."""
        proc, pid = self._proc, self.pid
        assert proc is not None and pid is not None, "finish() before a successful start()"
        with self._out as out:
            outcome, reason = h.SUCCESS, ""
            if not self._wait(pid, self._deadline):
                if self._killed is not None:
                    outcome, reason = self._killed
                else:
                    outcome, reason = h.TIMEOUT, f"killed after its timeout of {self.timeout:g}s"
                _killpg(pid, signal.SIGTERM)
                if not self._wait_plain(pid, time.monotonic() + self.grace):
                    reason += f"; SIGKILL after {self.grace:g}s"
            # The leader has exited (or is about to die): nothing of its group survives it.
            _killpg(pid, signal.SIGKILL)
            code = proc.wait()
            ended = self.clock()
            if outcome == h.SUCCESS and code != 0:
                outcome = h.FAILED
                reason = (f"killed by signal {-code}" if code < 0 else f"exit code {code}")
            return Attempt(outcome, code, self._started, ended, _tail(out, self.tail), reason)

    @staticmethod
    def _wait_plain(pid: int, until: float) -> bool:
        while not _exited(pid):
            if time.monotonic() >= until:
                return False
            time.sleep(0.01)
        return True


@dataclass
class RunContext:
    """What a run needs beyond its spec; the agent builds one per run."""

    history: h.History
    lock: ClusterLock | None = None
    tail_kib: int = 16
    grace: float = KILL_GRACE
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], bool] | None = None  # waits; returns True if told to stop
    # A cluster lock is kept at least until this Unix time (the tick's due time plus the
    # window in which the other hosts try it), so a short job cannot run twice in one tick.
    hold_lock_until: float | None = None


class JobRun:
    """All attempts of one job tick; start it on a thread with `run()`; `kill()` ends it."""

    def __init__(self, job: JobSpec, argv: tuple[str, ...] | None, tick: datetime,
                 ctx: RunContext) -> None:
        self.job, self.argv, self.tick, self.ctx = job, argv, tick, ctx
        self.run_id: int | None = None  # the history row of the current attempt
        self.current: Execution | None = None
        self.stopped = threading.Event()
        self._stop: tuple[str, str] | None = None
        self.outcome: str | None = None
        self.done = threading.Event()
        self.attempts: list[Attempt] = []
        self._launched: tuple[Execution, Attempt | None] | None = None

    def launch(self) -> None:
        """Start the first attempt now, on the caller's thread, when nothing has to come
        first (a cluster lock is a network round trip: those jobs start on their thread).
        `run()` then carries on with it."""
        if self.argv is None or self.job.singleton == "cluster" or self._launched:
            return
        self._launched = self._begin(1)

    def kill(self, outcome: str, reason: str) -> None:
        self._stop = (outcome, reason)
        self.stopped.set()
        if self.current is not None:
            self.current.kill(outcome, reason)

    def run(self) -> str:
        try:
            self.outcome = self._run()
            return self.outcome
        finally:
            self.done.set()

    def _run(self) -> str:
        hist, tick = self.ctx.history, self.tick.timestamp()
        if self.argv is None:
            now = self.ctx.clock()
            rid = hist.start(self.job.name, tick, 1, now)
            self.run_id = rid
            hist.finish(rid, now, h.ERROR, None,
                        f"action {self.job.action!r} is not installed on this host")
            return h.ERROR
        handle = None
        if self.job.singleton == "cluster":
            if self.ctx.lock is None:
                rid = hist.start(self.job.name, tick, 1, self.ctx.clock())
                hist.finish(rid, self.ctx.clock(), h.ERROR, None, "no cluster lock configured")
                return h.ERROR
            try:
                handle = self.ctx.lock.acquire(self.job.name)
            except OSError as exc:
                rid = hist.start(self.job.name, tick, 1, self.ctx.clock())
                hist.finish(rid, self.ctx.clock(), h.ERROR, None, f"cluster lock: {exc}")
                return h.ERROR
            if handle is None:
                hist.skipped(self.job.name, tick, self.ctx.clock(),
                             "cluster lock held: another host runs this tick")
                return h.SKIPPED
        try:
            return self._attempts(hist)
        finally:
            if handle is not None:
                hold = (self.ctx.hold_lock_until or 0) - self.ctx.clock()
                if hold > 0:
                    self.stopped.wait(hold)
                handle.release()

    def _begin(self, attempt: int) -> tuple[Execution, Attempt | None]:
        """Record the attempt in the history and start its process (an Attempt if it could
        not start)."""
        execution = Execution(self.argv or (), self.job.timeout, self.ctx.tail_kib,
                              grace=self.ctx.grace, clock=self.ctx.clock, user=self.job.user)
        self.run_id = self.ctx.history.start(self.job.name, self.tick.timestamp(), attempt,
                                             self.ctx.clock())
        self.current = execution
        return execution, execution.start()

    def _attempts(self, hist: h.History) -> str:
        outcome = h.ERROR
        for attempt in range(1, self.job.retries + 2):
            if attempt == 1 and self._launched is not None:
                execution, failed = self._launched
            elif self._stop is not None:
                break
            else:
                execution, failed = self._begin(attempt)
            if self._stop is not None:  # killed before `current` named this execution
                execution.kill(*self._stop)
            result = failed or execution.finish()
            self.attempts.append(result)
            hist.finish(self.run_id, result.ended, result.outcome, result.exit_code,
                        result.reason, result.output_tail)
            outcome = result.outcome
            if outcome not in h.FAILURES or attempt > self.job.retries:
                break
            delay = backoff_delay(self.job, self.tick, attempt)
            stop = (self.ctx.sleep(delay) if self.ctx.sleep is not None
                    else self.stopped.wait(delay))
            if stop or self._stop is not None:
                break
        return outcome
