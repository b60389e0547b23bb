"""The admin's password on every host of a site: how old it is, and rotating it.

The hardening role gives the admin its password from one place (the site's secrets, the
operator's file, or the prompt) and ages it like every account (graded protection asks for
it): after the maximum age sudo and sshd's PAM account check demand a new one, and after
the inactive days the account is disabled. opsctl would then be locked out of its own
site. `status` says when that happens on each host; `rotate` sets a new password on every
host at once, all or none, so that the site keeps one admin password.

Rotation is ordered so that no step loses the password a host has: the new one is written
beside the old (`FILE.next`) before any host changes; a host is changed with the old
password and verified with the new one; a failure puts the changed hosts back (their old
hash and their old change date), and only when every host has the new password does it
replace the old file.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from opsctl import audit
from opsctl.connection import Connection
from opsctl.errors import OpsctlError
from opsctl.paths import ensure_private_dir, write_private
from opsctl.roles import role_default
from opsctl.secrets import crypt_sha512, password_in, secrets_dir
from opsctl.site.model import Site
from opsctl.transport import HostError, SshTransport, Transport, for_site

TIMEOUT = 30
# Days before expiry from which `status` reports a host (exit 1): a fortnight to act.
WARN_DAYS = 14
# The role's generator: 24 characters of letters, digits and `.,:-_` (roles/hardening sudo.yml).
LENGTH = 24
ALPHABET = string.ascii_letters + string.digits + ".,:-_"
EPOCH = date(1970, 1, 1)

Prompt = Callable[[str], str]


class RotationFailed(OpsctlError):
    exit_code = 1

    def __init__(self, message: str, stuck: list[str] | None = None) -> None:
        super().__init__(message)
        self.stuck = stuck or []


def admin_user(conn: Connection) -> str:
    """The admin the hardening role gives a password: the login user, or ops on a site
    that logs in as root (its default `hardening_admin_user`)."""
    return "ops" if conn.user == "root" else conn.user


def password_file(conn: Connection) -> Path | None:
    """Where the site keeps the admin's password (None: the operator types it)."""
    if conn.become.password == "prompt" and conn.user != "root":
        return None
    if conn.become_file is not None:
        return conn.become_file
    # NOPASSWD sudo or a root login: the role's own default, the site's secrets.
    return secrets_dir(conn.site) / f"{admin_user(conn)}-password"


def shadow_hash(password: str, host: str) -> str:
    """The hash the hardening role sets for `password` on `host` (its salt is derived from
    the host's name, so the same password gives the same hash and apply changes nothing)."""
    salt = hashlib.sha256(host.encode()).hexdigest()[:16]
    return crypt_sha512(password, salt)


def policy_problem(password: str) -> str | None:
    """What the site's password quality rules (the hardening role's pwquality settings)
    find wrong with `password`: chpasswd -e takes a hash, so nothing on the host checks it."""
    minlen = int(role_default("hardening", "hardening_pwquality_minlen"))
    minclass = int(role_default("hardening", "hardening_pwquality_minclass"))
    if not password or "\n" in password or ":" in password:
        return "must be one line without ':'"
    if len(password) < minlen:
        return f"shorter than {minlen} characters"
    classes = sum(any(test(c) for c in password) for test in (
        str.islower, str.isupper, str.isdigit, lambda c: not c.isalnum()))
    if classes < minclass:
        return f"uses {classes} of the 4 character classes, the site asks for {minclass}"
    return None


def generate() -> str:
    """A password like the role's, drawn again until it meets the site's rules."""
    while True:
        candidate = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
        if policy_problem(candidate) is None:
            return candidate


# --- ages ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShadowEntry:
    """The fields of an /etc/shadow line that say when a password stops working."""

    user: str
    hash: str
    last_change: int | None  # days since 1970-01-01
    max_days: int | None
    inactive_days: int | None

    @classmethod
    def parse(cls, line: str) -> ShadowEntry:
        fields = line.strip().split(":")
        if len(fields) < 8:
            raise ValueError(f"not a shadow entry: {line.strip()[:40]!r}")

        def number(text: str) -> int | None:
            return int(text) if text.strip().lstrip("-").isdigit() else None

        return cls(fields[0], fields[1], number(fields[2]), number(fields[4]), number(fields[6]))

    def expires(self) -> date | None:
        """The day sudo and sshd first ask for a new password (None: never)."""
        if self.last_change is None or self.max_days is None or self.max_days >= 99999:
            return None
        return EPOCH + timedelta(days=self.last_change + self.max_days)

    def disabled(self) -> date | None:
        """The day the account stops working altogether (expiry plus the inactive days)."""
        expires = self.expires()
        if expires is None or self.inactive_days is None or self.inactive_days < 0:
            return None
        return expires + timedelta(days=self.inactive_days)


@dataclass(frozen=True)
class HostAge:
    host: str
    user: str
    last_change: date | None = None
    expires: date | None = None
    disabled: date | None = None
    days_left: int | None = None
    matches_site: bool | None = None  # the hash is the site's password (None: not known)
    state: str = "ok"  # ok | soon | expired | disabled | differs | error
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.state == "ok"


def judge(host: str, entry: ShadowEntry, today: date, expected_hash: str | None) -> HostAge:
    """Pure: one host's shadow entry against today and the site's password."""
    expires, disabled = entry.expires(), entry.disabled()
    days_left = None if expires is None else (expires - today).days
    matches = None if expected_hash is None else entry.hash == expected_hash
    if disabled is not None and today >= disabled:
        state = "disabled"
    elif days_left is not None and days_left <= 0:
        state = "expired"
    elif matches is False:
        state = "differs"
    elif days_left is not None and days_left <= WARN_DAYS:
        state = "soon"
    else:
        state = "ok"
    last = None if entry.last_change is None else EPOCH + timedelta(days=entry.last_change)
    return HostAge(host, entry.user, last, expires, disabled, days_left, matches, state)


def _read_entry(transport: Transport, host: str, user: str) -> ShadowEntry:
    done = transport.run(host, ["getent", "shadow", user], timeout=TIMEOUT)
    if done.rc == 2:  # getent: the key is not in the database
        raise HostError(f"{host}: no shadow entry for {user}")
    if done.rc != 0:
        raise HostError(f"{host}: getent shadow {user} failed ({done.message})")
    return ShadowEntry.parse(done.stdout)


def status(site: Site, via: str | None = None, today: date | None = None) -> list[HostAge]:
    """How long the admin's password keeps working on each host, and whether it is the
    site's (the hash of the password opsctl keeps, with the role's per-host salt)."""
    transport = for_site(site, via)
    conn = transport.conn
    user = admin_user(conn)
    today = today or datetime.now(UTC).date()
    known = _known_password(conn, transport)
    ages = []
    for host in conn.endpoints:
        try:
            entry = _read_entry(transport, host, user)
        except (HostError, ValueError) as exc:
            ages.append(HostAge(host, user, state="error", error=str(exc)))
            continue
        expected = None if known is None else shadow_hash(known, host)
        ages.append(judge(host, entry, today, expected))
    return ages


def _known_password(conn: Connection, transport: SshTransport) -> str | None:
    path = password_file(conn)
    if path is None:
        return transport.password()
    try:
        return password_in(path.read_text())
    except OSError:
        return None


# --- rotation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rotation:
    site: str
    user: str
    hosts: list[str]
    password_file: Path | None


def _set(transport: Transport, host: str, user: str, hashed: str) -> None:
    """Set the user's hash (chpasswd -e: the hash on stdin, never on a command line)."""
    done = transport.run(host, ["chpasswd", "-e"], stdin=f"{user}:{hashed}\n", timeout=TIMEOUT)
    if done.rc != 0:
        raise HostError(f"{host}: chpasswd refused ({done.message})")


def _set_change_day(transport: Transport, host: str, user: str, days: int | None) -> None:
    """Put back the day the password was last changed (chpasswd made it today)."""
    if days is None:
        return
    day = (EPOCH + timedelta(days=days)).isoformat()
    done = transport.run(host, ["chage", "-d", day, user], timeout=TIMEOUT)
    if done.rc != 0:
        raise HostError(f"{host}: chage -d refused ({done.message})")


def rotate(site: Site, via: str | None = None, new_password: str | None = None,
           prompt_new: Prompt | None = None) -> Rotation:
    """A new admin password on every host of the site, or on none of them."""
    old_transport = for_site(site, via)
    conn = old_transport.conn
    user = admin_user(conn)
    path = password_file(conn)
    if new_password is None:
        if path is None:
            if prompt_new is None:
                raise OpsctlError(f"site {site.name}: the admin's password is typed "
                                  "(become.password: prompt), and nobody is there to type a "
                                  "new one (run from a terminal)")
            new_password = prompt_new(f"new password for {user} on {site.name}")
        else:
            new_password = generate()
    problem = policy_problem(new_password)
    if problem is not None:
        raise OpsctlError(f"the new password for {user}: {problem}")
    hosts = list(conn.endpoints)
    # Asked before anything changes (a prompt, a wrong password): the old one must work.
    old_transport.password()
    pending = None if path is None else path.with_name(path.name + ".next")
    if pending is not None:
        ensure_private_dir(pending.parent)  # the site's secrets before its first hardening
        write_private(pending, new_password + "\n")
    new_transport = SshTransport(conn, password=new_password)
    try:
        change_hosts(old_transport, new_transport, user, hosts, new_password)
    except RotationFailed as exc:
        audit.append("site.password.rotate", {"site": site.name, "user": user},
                     f"failed: {exc}")
        if exc.stuck:
            raise RotationFailed(f"{exc}, kept in {pending or 'what you typed'}",
                                 exc.stuck) from None
        if pending is not None:
            pending.unlink(missing_ok=True)
        raise
    if path is not None and pending is not None:
        pending.replace(path)
    audit.append("site.password.rotate", {"site": site.name, "user": user},
                 f"rotated on {len(hosts)} hosts")
    return Rotation(site.name, user, hosts, path)


def change_hosts(old: Transport, new: Transport, user: str, hosts: list[str],
                 new_password: str) -> None:
    """Each host in turn: changed through sudo with the old password, read back through
    sudo with the new one. The first failure puts every changed host back."""
    changed: list[tuple[str, ShadowEntry]] = []
    try:
        for host in hosts:
            before = _read_entry(old, host, user)
            wanted = shadow_hash(new_password, host)
            changed.append((host, before))  # before: a timeout may hide a change made
            _set(old, host, user, wanted)
            if _read_entry(new, host, user).hash != wanted:
                raise HostError(f"{host}: the new password did not stay")
    except (HostError, ValueError) as exc:
        undone, stuck = _restore(old, new, user, changed)
        if stuck:
            raise RotationFailed(
                f"{exc}; the old password could not be put back on {', '.join(stuck)}: "
                "they take the new one", stuck) from None
        raise RotationFailed(f"{exc}; every host keeps the old password"
                             + (f" (put back on {', '.join(reversed(undone))})" if undone
                                else "")) from None


def _restore(old: Transport, new: Transport, user: str,
             changed: list[tuple[str, ShadowEntry]]) -> tuple[list[str], list[str]]:
    """Put the old hash and change date back where the new one went; which hosts were put
    back, and which could not be (they hold the new password)."""
    undone, stuck = [], []
    for host, before in reversed(changed):
        for transport in (old, new):  # sudo takes whichever password the host has now
            try:
                now = _read_entry(transport, host, user)
                if (now.hash, now.last_change) != (before.hash, before.last_change):
                    _set(transport, host, user, before.hash)
                    # from here sudo on the host takes the old password again
                    _set_change_day(old, host, user, before.last_change)
                    undone.append(host)
            except (HostError, ValueError):
                continue
            break
        else:
            stuck.append(host)
    return undone, stuck
