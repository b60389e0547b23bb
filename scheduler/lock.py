"""`singleton: cluster`: a PostgreSQL advisory lock, held on one session for the job's duration.

The DSN (`cluster_lock.dsn` in the jobs file) points at the *operational* cluster (the
database issue builds it): every host of the job's group asks
`SELECT pg_try_advisory_lock(hashtext(job))`; the one that gets `t` runs the tick, the others
record it as skipped. The lock belongs to the session, so it goes away with the session if
the host or its connection dies — no home-made lease to expire. If the session is lost while
the job runs, another host may take the lock for a later tick; the running job is not
stopped (the lock only decides who starts).

Two ways to hold the session: psycopg2 when it is importable, otherwise `psql` as a child
process whose stdin stays open (Debian's postgresql-client). Tests use `FakeLock`.
"""

from __future__ import annotations

import os
import select
import subprocess
import threading
from typing import Protocol


class LockHandle(Protocol):
    def release(self) -> None: ...


class ClusterLock(Protocol):
    def acquire(self, key: str) -> LockHandle | None:
        """Take the lock named `key` without waiting: a handle, or None if held elsewhere.
        Raises OSError when the database cannot be reached."""
        ...


TRY_SQL = "SELECT pg_try_advisory_lock(hashtext(%s))"
UNLOCK_SQL = "SELECT pg_advisory_unlock(hashtext(%s))"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class _PsqlHandle:
    def __init__(self, proc: subprocess.Popen[str], key: str) -> None:
        self.proc, self.key = proc, key

    def release(self) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(UNLOCK_SQL % _literal(self.key) + ";\n\\q\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()  # closing the session releases the lock anyway
            self.proc.wait()


class PsqlLock:
    """Holds the session through a `psql` child process."""

    def __init__(self, dsn: str, psql: str = "psql", timeout: float = 10.0) -> None:
        self.dsn, self.psql, self.timeout = dsn, psql, timeout

    def acquire(self, key: str) -> LockHandle | None:
        env = dict(os.environ, PGCONNECT_TIMEOUT=str(int(self.timeout)))
        proc = subprocess.Popen(
            [self.psql, "-X", "-q", "-w", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", self.dsn],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env, start_new_session=True)
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(TRY_SQL % _literal(key) + ";\n")
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], self.timeout)
            line = proc.stdout.readline().strip() if ready else ""
        except OSError:
            line = ""
        if line == "t":
            return _PsqlHandle(proc, key)
        proc.kill()
        _, err = proc.communicate()
        if line == "f":
            return None
        raise OSError(f"psql: {(err or 'no answer').strip().splitlines()[-1:] or ''}")


class _Psycopg2Handle:
    def __init__(self, conn: object) -> None:
        self.conn = conn

    def release(self) -> None:
        self.conn.close()  # type: ignore[attr-defined]  # the session ends, the lock with it


class Psycopg2Lock:
    def __init__(self, dsn: str, timeout: float = 10.0) -> None:
        self.dsn, self.timeout = dsn, timeout

    def acquire(self, key: str) -> LockHandle | None:
        import psycopg2  # noqa: PLC0415 - optional dependency

        try:
            conn = psycopg2.connect(self.dsn, connect_timeout=int(self.timeout))
        except psycopg2.Error as exc:
            raise OSError(str(exc).strip()) from None
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(TRY_SQL, (key,))
            got = cur.fetchone()[0]
        if got:
            return _Psycopg2Handle(conn)
        conn.close()
        return None


def make_lock(dsn: str) -> ClusterLock:
    try:
        import psycopg2  # noqa: F401, PLC0415
    except ImportError:
        return PsqlLock(dsn)
    return Psycopg2Lock(dsn)


class FakeLock:
    """In-process stand-in shared by several "hosts" in tests."""

    def __init__(self) -> None:
        self.held: set[str] = set()
        self._mutex = threading.Lock()
        self.acquired: list[str] = []

    def acquire(self, key: str) -> LockHandle | None:
        with self._mutex:
            if key in self.held:
                return None
            self.held.add(key)
            self.acquired.append(key)
        return _FakeHandle(self, key)


class _FakeHandle:
    def __init__(self, lock: FakeLock, key: str) -> None:
        self.lock, self.key = lock, key

    def release(self) -> None:
        with self.lock._mutex:  # noqa: SLF001
            self.lock.held.discard(self.key)
