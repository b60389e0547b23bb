"""Generated secrets: made once, private, and their bcrypt form follows the secret."""

from __future__ import annotations

import warnings

from opsctl.secrets import ensure_bcrypt, ensure_secret, secrets_dir


def verify(password: str, stored: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt as c

    return c.crypt(password, stored) == stored


def test_a_secret_is_made_once_and_kept_private(state_dir):
    first = ensure_secret("gansu", "db_owner")
    assert len(first) == 32 and first.isalnum()
    assert ensure_secret("gansu", "db_owner") == first
    path = secrets_dir("gansu") / "db_owner"
    assert (path.stat().st_mode & 0o777) == 0o600
    assert (secrets_dir("gansu").stat().st_mode & 0o777) == 0o700


def test_the_bcrypt_form_verifies_and_follows_a_changed_secret(state_dir):
    path = ensure_bcrypt("gansu", "monitor_scrape")
    stored = path.read_text().strip()
    assert stored.startswith("$2") and verify(ensure_secret("gansu", "monitor_scrape"), stored)
    assert ensure_bcrypt("gansu", "monitor_scrape").read_text().strip() == stored, "kept"
    (secrets_dir("gansu") / "monitor_scrape").write_text("rotated-by-hand\n")
    renewed = ensure_bcrypt("gansu", "monitor_scrape").read_text().strip()
    assert renewed != stored and verify("rotated-by-hand", renewed)
