"""The exporter-toolkit `web-config.yml` that Prometheus exporters share: TLS and basic auth.

Supported: tls_server_config (cert_file, key_file, client_ca_file, client_auth_type,
min_version) and basic_auth_users (bcrypt hashes, checked with the system's crypt(3)).

Like exporter-toolkit, which reads the certificate at each handshake, the TLS context is made
again when the certificate, key or client CA file changes (`WebConfig.current_tls`): a
rotated host certificate is served without restarting the agent.
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from monitor.config import ConfigError, load_structured

TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
CLIENT_AUTH = {"NoClientCert": ssl.CERT_NONE, "RequestClientCert": ssl.CERT_OPTIONAL,
               "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
               "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
               "RequireAnyClientCert": ssl.CERT_REQUIRED}


def _crypt(password: str, stored: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # noqa: PLC0415 - deprecated in 3.11, present on Debian 12's Python

    return crypt.crypt(password, stored) or ""


def _stamp(tls: dict) -> tuple:
    """What identifies the TLS files' current contents, cheaply (one stat each)."""
    out = []
    for key in ("cert_file", "key_file", "client_ca_file"):
        try:
            st = Path(tls[key]).stat() if tls.get(key) else None
        except OSError:
            st = None
        out.append((st.st_ino, st.st_size, st.st_mtime_ns) if st else None)
    return tuple(out)


@dataclass
class WebConfig:
    tls: ssl.SSLContext | None = None
    users: dict[str, str] = field(default_factory=dict)
    # the web config file and its tls_server_config, to make the context again
    source: tuple[Path, dict] | None = None
    loaded: tuple = ()  # _stamp of the files self.tls was made from
    # bcrypt is slow on purpose; remember credentials already proven, as exporter-toolkit does.
    _proven: set[bytes] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def current_tls(self) -> ssl.SSLContext | None:
        """The TLS context for a new connection: made again when its files changed. A pair
        that does not load (a key written before its certificate) keeps the old context
        serving; the next connection tries again."""
        if self.tls is None or self.source is None:
            return self.tls
        stamp = _stamp(self.source[1])
        if stamp != self.loaded:
            with self._lock:
                if stamp != self.loaded:
                    try:
                        self.tls = _tls_context(*self.source)
                        self.loaded = stamp
                    except (ConfigError, OSError, ssl.SSLError):
                        pass
        return self.tls

    def authorised(self, user: str | None, password: str | None) -> bool:
        if not self.users:
            return True
        if user is None or password is None or user not in self.users:
            return False
        stored = self.users[user]
        key = hashlib.sha256(f"{user}\0{password}\0{stored}".encode()).digest()
        with self._lock:
            if key in self._proven:
                return True
        if hmac.compare_digest(_crypt(password, stored), stored):
            with self._lock:
                self._proven.add(key)
            return True
        return False


def load_web_config(path: Path | None) -> WebConfig:
    if path is None:
        return WebConfig()
    data = load_structured(path)
    unknown = sorted(set(data) - {"tls_server_config", "basic_auth_users", "http_server_config"})
    if unknown:
        raise ConfigError(f"{path}: {unknown[0]}: unknown key")
    users = data.get("basic_auth_users") or {}
    if not isinstance(users, dict):
        raise ConfigError(f"{path}: basic_auth_users: expected a mapping user: bcrypt-hash")
    for user, stored in users.items():
        if not isinstance(stored, str) or not stored.startswith(("$2a$", "$2b$", "$2y$")):
            raise ConfigError(f"{path}: basic_auth_users.{user}: expected a bcrypt hash")
    tls_data = data.get("tls_server_config")
    if not tls_data:
        return WebConfig(users=dict(users))
    stamp = _stamp(tls_data)
    return WebConfig(tls=_tls_context(path, tls_data), users=dict(users),
                     source=(path, dict(tls_data)), loaded=stamp)


def _tls_context(path: Path, tls: dict) -> ssl.SSLContext:
    for key in ("cert_file", "key_file"):
        if not tls.get(key):
            raise ConfigError(f"{path}: tls_server_config.{key}: required")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    version = tls.get("min_version", "TLS12")
    if version not in TLS_VERSIONS:
        raise ConfigError(f"{path}: tls_server_config.min_version: expected one of "
                          f"{', '.join(TLS_VERSIONS)}")
    context.minimum_version = TLS_VERSIONS[version]
    try:
        context.load_cert_chain(tls["cert_file"], tls["key_file"])
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{path}: tls_server_config: cannot load {tls['cert_file']}: "
                          f"{exc}") from None
    auth = tls.get("client_auth_type", "NoClientCert")
    if auth not in CLIENT_AUTH:
        raise ConfigError(f"{path}: tls_server_config.client_auth_type: unknown {auth!r}")
    context.verify_mode = CLIENT_AUTH[auth]
    if tls.get("client_ca_file"):
        context.load_verify_locations(tls["client_ca_file"])
    return context
