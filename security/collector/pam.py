"""The PAM stack as pam-auth-update composed it, and the password-quality and lockout settings
its modules read (pwquality.conf, faillock.conf, and the modules' own arguments)."""

from __future__ import annotations

import re

from security.collector.base import FactError, conf_dir, kv_file, lines, num, read, read_files

PAM_DIR = "/etc/pam.d"
SECOND_FACTOR = ("pam_google_authenticator", "pam_oath", "pam_u2f", "pam_yubico", "pam_duo",
                 "pam_otp")
PAM_HASHES = ("yescrypt", "sha512", "sha256", "md5", "bigcrypt", "blowfish")
PWQUALITY_CONF = "/etc/security/pwquality.conf"
FAILLOCK_CONF = "/etc/security/faillock.conf"


def read_pam(name: str) -> str:
    return read(f"{PAM_DIR}/{name}")


def read_pam_opt(name: str) -> str | None:
    try:
        return read_pam(name)
    except FactError:
        return None


def parse_pam_lines(text: str) -> list[list[str]]:
    """A PAM file's effective lines as [type, control, module, args...]."""
    rows = []
    for line in lines(text):
        # Bracketed controls contain spaces: keep them as one field.
        m = re.match(r"(\S+)\s+(\[[^\]]*\]|\S+)\s+(\S+)\s*(.*)", line)
        if m:
            rows.append([m.group(1), m.group(2), m.group(3), *m.group(4).split()])
    return rows


def pam_args(rows: list[list[str]], module: str) -> dict[str, int | str]:
    args: dict[str, int | str] = {}
    for row in rows:
        if row[2].endswith(module):
            for arg in row[3:]:
                key, _, value = arg.partition("=")
                args[key] = num(value) if value else True  # type: ignore[assignment]
    return args


def stops_on_failure(control: str) -> bool:
    return control in ("required", "requisite") or "default=die" in control \
        or "default=bad" in control


def faillock_order(auth: list[list[str]], account: list[list[str]]) -> dict[str, bool]:
    """pam_faillock counts and refuses only in this order (pam_faillock(8)): `preauth` before
    pam_unix in auth (a locked account is refused before its password is asked), `authfail`
    after it (a failure is counted), and the module in account (a success resets the count)."""
    def first(pred) -> int | None:
        return next((i for i, r in enumerate(auth) if pred(r)), None)

    unix = first(lambda r: r[2].endswith("pam_unix.so"))
    preauth = first(lambda r: r[2].endswith("pam_faillock.so") and "preauth" in r[3:]
                    and stops_on_failure(r[1]))
    authfail = [i for i, r in enumerate(auth) if r[2].endswith("pam_faillock.so")
                and "authfail" in r[3:] and stops_on_failure(r[1])]
    return {
        "faillock_preauth_before_unix": None not in (preauth, unix) and preauth < unix,
        "faillock_authfail_after_unix": unix is not None and any(i > unix for i in authfail),
        "faillock_in_account": any(r[2].endswith("pam_faillock.so") for r in account),
    }


# ---------------------------------------------------------------- pam

def gather_pam() -> dict[str, str | None]:
    """The four common-* files (each required) and su's (optional), as text."""
    texts: dict[str, str | None] = {}
    for kind in ("auth", "password", "account", "session"):
        texts[kind] = read_pam(f"common-{kind}")
    texts["su"] = read_pam_opt("su")
    return texts


def parse_pam(texts: dict[str, str | None]) -> dict:
    auth, password, account, session = (parse_pam_lines(texts[k] or "") for k in
                                        ("auth", "password", "account", "session"))
    mods = {
        "common_auth_modules": [r[2] for r in auth],
        "common_password_modules": [r[2] for r in password],
        "common_account_modules": [r[2] for r in account],
        "common_session_modules": [r[2] for r in session],
    }
    nullok = sorted({f"common-{n}" for n, rows in (("auth", auth), ("password", password))
                     for r in rows if r[2].endswith("pam_unix.so") and "nullok" in r[3:]})
    pam_unix_pw = pam_args(password, "pam_unix.so")
    hashes = [h for h in PAM_HASHES if h in pam_unix_pw]
    remember = pam_args(password, "pam_pwhistory.so").get("remember",
                                                         pam_unix_pw.get("remember"))
    second_factor = sorted({r[2] for r in auth if any(k in r[2] for k in SECOND_FACTOR)})
    return {
        **mods,
        "nullok_in": nullok,
        "pwquality_enabled": any(m.endswith("pam_pwquality.so") for m in
                                 mods["common_password_modules"]),
        "faillock_enabled": any(m.endswith("pam_faillock.so") for m in
                                mods["common_auth_modules"]),
        **faillock_order(auth, account),
        "password_hash": hashes[0] if hashes else None,
        "pwhistory_remember": remember if isinstance(remember, int) else None,
        "second_factor_modules": second_factor,
        "su_restricted_to_group": any(r[2].endswith("pam_wheel.so") and r[0] == "auth"
                                      for r in parse_pam_lines(texts["su"] or "")),
    }


def fact_pam() -> dict:
    return parse_pam(gather_pam())


# ---------------------------------------------------------------- pwquality

def gather_pwquality() -> dict:
    return {"conf": read_files([PWQUALITY_CONF, *conf_dir(f"{PWQUALITY_CONF}.d")]),
            "common_password": read_pam_opt("common-password")}


def parse_pwquality(read_data: dict) -> dict:
    settings: dict[str, int | str] = {}
    sources = []
    for path, text in read_data["conf"].items():
        if text is not None:
            settings.update(kv_file(text, "="))
            # Keywords without a value (enforce_for_root, local_users_only) are flags.
            settings.update({line: True for line in lines(text) if "=" not in line})
            sources.append(path)
    common_password = read_data["common_password"]
    args = {} if common_password is None else \
        pam_args(parse_pam_lines(common_password), "pam_pwquality.so")
    if args:
        sources.append(f"{PAM_DIR}/common-password")
    settings.update({k: v for k, v in args.items() if not isinstance(v, bool)})
    # The effective minimum classes: minclass, or the credits that demand a class (< 0).
    credits = sum(1 for k in ("dcredit", "ucredit", "lcredit", "ocredit")
                  if isinstance(settings.get(k), int) and int(settings[k]) < 0)
    minclass = settings.get("minclass", 0)
    return {
        "minlen": settings.get("minlen", 8),
        "minclass": max(int(minclass) if isinstance(minclass, int) else 0, credits),
        "retry": settings.get("retry", 1),
        "enforce_for_root": bool(settings.get("enforce_for_root")) or "enforce_for_root" in args,
        "dictcheck": settings.get("dictcheck", 1),
        "sources": sources,
    }


def fact_pwquality() -> dict:
    return parse_pwquality(gather_pwquality())


# ---------------------------------------------------------------- faillock

def gather_faillock() -> dict:
    return {"conf": read_files([FAILLOCK_CONF])[FAILLOCK_CONF],
            "common_auth": read_pam_opt("common-auth")}


def parse_faillock(read_data: dict) -> dict:
    settings: dict[str, int | str | bool] = {}
    sources = []
    if read_data["conf"] is not None:
        sources.append(FAILLOCK_CONF)
        for line in lines(read_data["conf"]):
            if "=" in line:
                k, v = line.split("=", 1)
                settings[k.strip()] = num(v.strip())
            else:
                settings[line] = True
    common_auth = read_data["common_auth"]
    args = {} if common_auth is None else \
        pam_args(parse_pam_lines(common_auth), "pam_faillock.so")
    if args:
        sources.append(f"{PAM_DIR}/common-auth")
    settings.update(args)
    return {
        "deny": settings.get("deny", 3),
        "unlock_time": settings.get("unlock_time", 600),
        "fail_interval": settings.get("fail_interval", 900),
        "even_deny_root": bool(settings.get("even_deny_root", False)),
        "sources": sources,
    }


def fact_faillock() -> dict:
    return parse_faillock(gather_faillock())
