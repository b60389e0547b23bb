"""The admin's password: its age judged per host, the role's hash, and all-or-none rotation
(against fake hosts that keep a shadow file and a sudo that checks the password)."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from datetime import date, timedelta

import pytest
import yaml

from opsctl.admin import password as pw
from opsctl.paths import project_root
from opsctl.transport import BecomeRefused, HostError, Result

TODAY = date(2026, 12, 6)
DAY = (TODAY - pw.EPOCH).days


def entry(last_change: int | None, max_days: str = "90", inactive: str = "35",
          hashed: str = "$6$x$y") -> pw.ShadowEntry:
    last = "" if last_change is None else str(last_change)
    return pw.ShadowEntry.parse(f"ops:{hashed}:{last}:1:{max_days}:7:{inactive}::\n")


def test_shadow_entry_dates() -> None:
    e = entry(DAY - 80)
    assert e.expires() == TODAY + timedelta(days=10)
    assert e.disabled() == TODAY + timedelta(days=45)
    assert entry(DAY, max_days="99999").expires() is None
    assert entry(DAY, inactive="").disabled() is None
    with pytest.raises(ValueError, match="not a shadow entry"):
        pw.ShadowEntry.parse("ops:x:1")


@pytest.mark.parametrize(("changed_days_ago", "hashed", "state", "days_left"), [
    (10, "H", "ok", 80),
    (75, "H", "ok", 15),
    (76, "H", "soon", 14),
    (80, "H", "soon", 10),
    (90, "H", "expired", 0),
    (124, "H", "expired", -34),
    (125, "H", "disabled", -35),
    (10, "OTHER", "differs", 80),
])
def test_judge(changed_days_ago: int, hashed: str, state: str, days_left: int) -> None:
    age = pw.judge("web1", entry(DAY - changed_days_ago, hashed=hashed), TODAY, "H")
    assert (age.state, age.days_left) == (state, days_left)
    assert age.last_change == TODAY - timedelta(days=changed_days_ago)
    assert age.ok is (state == "ok")


def test_unknown_password_is_not_judged_different() -> None:
    age = pw.judge("web1", entry(DAY - 10), TODAY, None)
    assert (age.state, age.matches_site) == ("ok", None)


def _role_task(name: str) -> dict:
    tasks = yaml.safe_load((project_root() / "roles/hardening/tasks/sudo.yml").read_text())
    return next(t for t in tasks if t["name"] == name)


def test_shadow_hash_is_the_roles() -> None:
    """The role hashes on the host with a salt from the host's name; the same password
    must give the same hash here, or the next apply would change it back."""
    argv = _role_task("Hash the admin's password on the host")["ansible.builtin.command"]["argv"]
    assert argv[-1] == "{{ (inventory_hostname | hash('sha256'))[:16] }}"
    salt = hashlib.sha256(b"db1").hexdigest()[:16]
    done = subprocess.run([sys.executable, *argv[1:-1], salt], input="Secret.pass-1",
                          capture_output=True, text=True, check=True)
    assert pw.shadow_hash("Secret.pass-1", "db1") == done.stdout.strip()
    assert pw.shadow_hash("Secret.pass-1", "db2") != done.stdout.strip()


def test_generated_like_the_roles() -> None:
    lookup = _role_task("Read or generate the admin's password on the control node")
    text = lookup["ansible.builtin.set_fact"]["hardening_admin_password"]
    assert f"length={pw.LENGTH}" in text
    chars = re.search(r"chars=\[(.*?)\]", text).group(1)
    assert "ascii_letters" in chars and "digits" in chars and "'.,:-_'" in chars
    for _ in range(200):
        new = pw.generate()
        assert len(new) == pw.LENGTH and set(new) <= set(pw.ALPHABET)
        assert pw.policy_problem(new) is None


@pytest.mark.parametrize(("candidate", "problem"), [
    ("Short.1a", "shorter than 12 characters"),
    ("alllowercaseletters", "uses 1 of the 4 character classes, the site asks for 3"),
    ("lowerUPPERonlyhere", "uses 2 of the 4 character classes, the site asks for 3"),
    ("lower.UPPER.mixed", None),
    ("has:colon.Upper1", "must be one line without ':'"),
    ("", "must be one line without ':'"),
])
def test_new_passwords_meet_the_sites_quality_rules(candidate: str, problem: str | None) -> None:
    assert pw.policy_problem(candidate) == problem


def test_admin_user_is_the_roles() -> None:
    defaults = yaml.safe_load((project_root() / "roles/hardening/defaults/main.yml").read_text())
    assert defaults["hardening_admin_user"] == (
        "{{ 'ops' if (opsctl_login_user | default('root')) == 'root' else opsctl_login_user }}")


class Hosts:
    """Fake hosts: each keeps the admin's shadow entry; sudo takes only its password."""

    def __init__(self, names: list[str], password: str) -> None:
        self.shadow = {h: [pw.shadow_hash(password, h), DAY - 60] for h in names}
        self.fail_chpasswd: set[str] = set()
        self.fail_after_change: set[str] = set()

    def transport(self, password: str) -> FakeTransport:
        return FakeTransport(self, password)


class FakeTransport:
    def __init__(self, hosts: Hosts, password: str) -> None:
        self.hosts, self.password = hosts, password

    def run(self, host: str, argv: list[str], stdin: str | None = None, *,
            timeout: float) -> Result:
        state = self.hosts.shadow[host]
        if pw.shadow_hash(self.password, host) != state[0]:
            raise BecomeRefused(f"{host}: sudo refused ops (incorrect password attempt)")
        if argv == ["getent", "shadow", "ops"]:
            return Result(0, f"ops:{state[0]}:{state[1]}:1:90:7:35::\n", "")
        if argv == ["chpasswd", "-e"]:
            if host in self.hosts.fail_chpasswd:
                return Result(1, "", "chpasswd: cannot lock /etc/shadow")
            user, hashed = stdin.rstrip("\n").split(":", 1)
            assert user == "ops"
            state[:] = [hashed, DAY]
            if host in self.hosts.fail_after_change:  # once: the link came back
                self.hosts.fail_after_change.discard(host)
                raise HostError(f"{host}: no answer within 30 s running chpasswd")
            return Result(0, "", "")
        if argv[:2] == ["chage", "-d"]:
            state[1] = (date.fromisoformat(argv[2]) - pw.EPOCH).days
            return Result(0, "", "")
        raise AssertionError(argv)


NAMES = ["lb1", "web1", "web2", "db1"]


def test_rotation_changes_every_host() -> None:
    hosts = Hosts(NAMES, "old")
    pw.change_hosts(hosts.transport("old"), hosts.transport("new"), "ops", NAMES, "new")
    assert all(state == [pw.shadow_hash("new", h), DAY] for h, state in hosts.shadow.items())


def test_rotation_failing_on_a_host_puts_back_the_others() -> None:
    hosts = Hosts(NAMES, "old")
    before = {h: list(s) for h, s in hosts.shadow.items()}
    hosts.fail_chpasswd.add("web2")
    with pytest.raises(pw.RotationFailed) as caught:
        pw.change_hosts(hosts.transport("old"), hosts.transport("new"), "ops", NAMES, "new")
    assert str(caught.value) == ("web2: chpasswd refused (chpasswd: cannot lock /etc/shadow); "
                                 "every host keeps the old password (put back on lb1, web1)")
    assert hosts.shadow == before  # old hash and old change date, db1 never touched
    assert caught.value.stuck == []


def test_a_change_hidden_by_a_timeout_is_put_back_too() -> None:
    hosts = Hosts(NAMES, "old")
    before = {h: list(s) for h, s in hosts.shadow.items()}
    hosts.fail_after_change.add("web1")
    with pytest.raises(pw.RotationFailed, match="every host keeps the old password"):
        pw.change_hosts(hosts.transport("old"), hosts.transport("new"), "ops", NAMES, "new")
    assert hosts.shadow == before


def test_a_host_that_cannot_be_put_back_is_named() -> None:
    hosts = Hosts(NAMES, "old")
    hosts.fail_chpasswd.add("web2")
    real_run = FakeTransport.run

    def web1_stuck(self, host, argv, stdin=None, *, timeout):
        if host == "web1" and argv == ["chpasswd", "-e"] and self.password == "new":
            return Result(1, "", "chpasswd: PAM failure")
        return real_run(self, host, argv, stdin, timeout=timeout)

    FakeTransport.run = web1_stuck
    try:
        with pytest.raises(pw.RotationFailed) as caught:
            pw.change_hosts(hosts.transport("old"), hosts.transport("new"), "ops", NAMES, "new")
    finally:
        FakeTransport.run = real_run
    assert caught.value.stuck == ["web1"]
    assert "could not be put back on web1: they take the new one" in str(caught.value)
    assert hosts.shadow["web1"][0] == pw.shadow_hash("new", "web1")
    assert hosts.shadow["lb1"][0] == pw.shadow_hash("old", "lb1")
