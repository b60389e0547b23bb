"""Secrets opsctl generates for a site: in a root-only directory of the state, never in the repo.

Roles read them with `lookup('ansible.builtin.password', opsctl_secrets_dir ~ '/NAME ...')`
(which makes one on first use) or `lookup('ansible.builtin.file', ...)` for those opsctl makes
before a run. A few need a derived form the roles cannot compute offline (ansible-core's
password_hash wants passlib): opsctl writes those next to the secret.
"""

from __future__ import annotations

import secrets
import string
import warnings
from collections.abc import Iterable
from pathlib import Path

from opsctl.paths import ensure_private_dir, state_dir, write_private

ALPHABET = string.ascii_letters + string.digits
# The monitoring agents' basic-auth credential for Prometheus's scrapes.
MONITOR_SCRAPE = "monitor_scrape"


# A province's copy of its push credential to the national node (role prometheus reads it).
NATIONAL_UPLINK = "national_uplink"


def uplink_secret(province: str) -> str:
    """The secret a province's Prometheus pushes to the national access gateway with (on the
    national site; the gateway holds its bcrypt hash, the province a copy of the password)."""
    return f"uplink_{province}"


def secrets_dir(site_name: str) -> Path:
    return state_dir() / "secrets" / site_name


def password_in(text: str) -> str:
    """The password a file holds, in Ansible's password lookup format (`VALUE salt=...`,
    how hardening keeps the admin's password; a plain line is the same without the salt)."""
    return text.split(" salt=")[0].rstrip("\n")


def ensure_secret(site_name: str, name: str, length: int = 32) -> str:
    """The secret NAME of the site, made on first use (the password lookup's file format)."""
    path = ensure_private_dir(secrets_dir(site_name)) / name
    if path.exists():
        return path.read_text().split(" salt=")[0].strip()
    value = "".join(secrets.choice(ALPHABET) for _ in range(length))
    write_private(path, value + "\n")
    return value


def _crypt(password: str, salt_or_hash: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # noqa: PLC0415 - Python 3.11's, with the system's bcrypt

    return crypt.crypt(password, salt_or_hash) or ""


def crypt_sha512(password: str, salt: str) -> str:
    """SHA-512 crypt with a given salt: the hash a host's libcrypt makes for the same pair."""
    return _crypt(password, f"$6${salt}")


def sha512_crypt(password: str) -> str:
    """An /etc/shadow hash of password (SHA-512, a random salt), for accounts opsctl makes
    outside Ansible (the lab's bare servers)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # noqa: PLC0415

    return _crypt(password, crypt.mksalt(crypt.METHOD_SHA512))


def ensure_bcrypt(site_name: str, name: str, rounds: int = 1 << 10) -> Path:
    """NAME.bcrypt: a bcrypt hash of secret NAME, kept while it still matches the secret."""
    password = ensure_secret(site_name, name)
    path = secrets_dir(site_name) / f"{name}.bcrypt"
    if path.exists():
        stored = path.read_text().strip()
        if stored and _crypt(password, stored) == stored:
            return path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # noqa: PLC0415

    hashed = _crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=rounds))
    if not hashed.startswith("$2"):
        raise RuntimeError("this Python's crypt has no bcrypt")
    write_private(path, hashed + "\n")
    return path


def ensure_uplink_credential(site_name: str, province: str) -> str:
    """The national site's push credential for `province` and its hash (made on first use);
    returns the password."""
    # bcrypt's lowest cost: the password is 32 random characters (190 bits), so the cost
    # guards nothing, and each apply checks every hash against its secret (31 provinces at
    # the default cost: 1.8 s of every apply).
    ensure_bcrypt(site_name, uplink_secret(province), rounds=1 << 4)
    return ensure_secret(site_name, uplink_secret(province))


def ensure_site_secrets(site_name: str, provinces: Iterable[str] = ()) -> Path:
    """Everything opsctl itself must make before a run; returns the directory. `provinces`:
    those the site receives metrics from (the national node's site.provinces)."""
    ensure_bcrypt(site_name, MONITOR_SCRAPE)
    for province in provinces:
        ensure_uplink_credential(site_name, province)
    return secrets_dir(site_name)
