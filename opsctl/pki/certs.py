"""What a certificate says, from its PEM or DER bytes (pure: no files, no hosts)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding


@dataclass(frozen=True)
class CertInfo:
    subject: str
    sans: tuple[str, ...]
    issuer: str
    not_before: datetime
    not_after: datetime
    fingerprint: str  # SHA-256 of the DER, lowercase hex
    serial: str

    def days_left(self, now: datetime) -> float:
        return (self.not_after - now).total_seconds() / 86400

    def as_dict(self, now: datetime) -> dict[str, object]:
        return {"subject": self.subject, "sans": list(self.sans), "issuer": self.issuer,
                "not_before": self.not_before.isoformat(), "not_after": self.not_after.isoformat(),
                "days_left": round(self.days_left(now), 1), "fingerprint": self.fingerprint,
                "serial": self.serial}


class Unreadable(ValueError):
    """Not a certificate."""


def _sans(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    names = [f"DNS:{n}" for n in ext.get_values_for_type(x509.DNSName)]
    names += [f"IP:{a}" for a in ext.get_values_for_type(x509.IPAddress)]
    return tuple(sorted(names))


def _info(cert: x509.Certificate) -> CertInfo:
    der = cert.public_bytes(Encoding.DER)
    return CertInfo(cert.subject.rfc4514_string(), _sans(cert), cert.issuer.rfc4514_string(),
                    cert.not_valid_before_utc, cert.not_valid_after_utc,
                    hashlib.sha256(der).hexdigest(), format(cert.serial_number, "x"))


def from_pem(text: str) -> CertInfo:
    """The first certificate of a PEM text."""
    try:
        return _info(x509.load_pem_x509_certificate(text.encode("ascii", errors="replace")))
    except ValueError as exc:
        raise Unreadable(f"not a PEM certificate ({exc})") from None


def from_pem_file(path: Path) -> CertInfo:
    """The certificate in a PEM file (OSError when unreadable, Unreadable when not PEM)."""
    return from_pem(path.read_text(encoding="ascii", errors="replace"))


def all_from_pem(text: str) -> tuple[CertInfo, ...]:
    """Every certificate of a PEM text (a trust bundle), in its order."""
    try:
        found = x509.load_pem_x509_certificates(text.encode("ascii", errors="replace"))
    except ValueError as exc:
        raise Unreadable(f"not a PEM certificate ({exc})") from None
    return tuple(_info(cert) for cert in found)


def common_name(name: str) -> str:
    """A distinguished name's CN (the whole name when it has none)."""
    return next((part[3:] for part in name.split(",") if part.startswith("CN=")), name)


def from_der(data: bytes) -> CertInfo:
    try:
        return _info(x509.load_der_x509_certificate(data))
    except ValueError as exc:
        raise Unreadable(f"not a DER certificate ({exc})") from None


def utcnow() -> datetime:
    return datetime.now(UTC)
