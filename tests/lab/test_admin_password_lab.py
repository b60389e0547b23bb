"""The admin's password on the converged reference lab: how long it keeps working, and a
rotation that reaches every host or none (a real site's admin password ages like everyone's:
without rotation opsctl is locked out of the site on day 90 + 35)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from opsctl.admin import password as admin_password
from opsctl.connection import resolve
from opsctl.secrets import secrets_dir
from opsctl.transport import BecomeRefused, SshTransport

pytestmark = pytest.mark.lab


def opsctl(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "opsctl", *args], capture_output=True,
                          text=True, check=False, timeout=timeout)


def shadow(transport: SshTransport, host: str) -> str:
    done = transport.run(host, ["getent", "shadow", "ops"], timeout=30)
    assert done.rc == 0, done.output
    return done.stdout.strip()


def test_status_says_when_the_password_expires_on_every_host(reference):
    site, _ = reference
    done = opsctl("site", "password", "status", str(site.directory), "-o", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    ages = {a["host"]: a for a in json.loads(done.stdout)}
    assert sorted(ages) == sorted(site.hosts)
    for host, age in ages.items():
        assert age["state"] == "ok" and age["matches_site"] is True, (host, age)
        assert age["days_left"] > admin_password.WARN_DAYS, (host, age)  # hardening's 90 days


def test_a_rotation_failing_on_one_host_leaves_every_host_as_it_was(reference):
    site, _ = reference
    file = secrets_dir(site.name) / "ops-password"
    old = file.read_text()
    transport = SshTransport(resolve(site))
    hosts = list(transport.conn.endpoints)
    last = hosts[-1]
    before = {h: shadow(transport, h) for h in hosts}
    # A live process holds the shadow lock on the last host: its chpasswd must fail.
    done = transport.run(last, ["sh", "-c", "echo 1 > /etc/shadow.lock"], timeout=30)
    assert done.rc == 0, done.output
    try:
        done = opsctl("site", "password", "rotate", str(site.directory))
    finally:
        transport.run(last, ["rm", "-f", "/etc/shadow.lock"], timeout=30)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{last}: chpasswd refused" in done.stderr
    assert "every host keeps the old password (put back on" in done.stderr
    assert file.read_text() == old
    assert not file.with_name("ops-password.next").exists()
    # the hash and the day it was last changed: the ageing clock did not restart either
    assert {h: shadow(transport, h) for h in hosts} == before


def test_rotation_gives_every_host_the_new_password_and_apply_keeps_it(reference):
    site, _ = reference
    file = secrets_dir(site.name) / "ops-password"
    old = file.read_text().strip()
    done = opsctl("site", "password", "rotate", str(site.directory))
    assert done.returncode == 0, done.stdout + done.stderr
    new = file.read_text().strip()
    assert new != old and len(new) == admin_password.LENGTH
    assert f"new password on {len(site.hosts)} hosts" in done.stdout
    conn = resolve(site)
    with pytest.raises(BecomeRefused):
        SshTransport(conn, password=old).run(next(iter(conn.endpoints)), ["true"], timeout=30)
    done = opsctl("site", "password", "status", str(site.directory), "-o", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    today = datetime.now(UTC).date().isoformat()
    for age in json.loads(done.stdout):
        assert age["matches_site"] is True and age["last_change"] == today, age
    # the role hashes the same password to the same hash: converging again changes nothing
    done = opsctl("harden", "--site", str(site.directory), "--tags", "hardening-sudo",
                  "-o", "json")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    record = json.loads(done.stdout)
    assert {h: t["changed"] for h, t in record["hosts"].items()} == \
        {h: 0 for h in record["hosts"]}
