"""Expiry of the TLS certificates the host's services present."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily, Metric


def not_after(path: Path) -> float:
    """The certificate's notAfter as Unix time (the ssl module's own PEM decoder)."""
    decoded = ssl._ssl._test_decode_cert(str(path))  # noqa: SLF001 - stdlib, no extra package
    return ssl.cert_time_to_seconds(decoded["notAfter"])


class CertificateCollector:
    def __init__(self, paths: tuple[Path, ...]) -> None:
        self.paths = paths

    def collect(self) -> Iterator[Metric]:
        if not self.paths:
            return
        expiry = GaugeMetricFamily("opsctl_tls_certificate_expiry_timestamp_seconds",
                                   "When the certificate stops being valid (notAfter).",
                                   labels=["path"])
        readable = GaugeMetricFamily("opsctl_tls_certificate_readable",
                                     "Whether the certificate file could be read and parsed.",
                                     labels=["path"])
        for path in self.paths:
            try:
                expiry.add_metric([str(path)], not_after(path))
                readable.add_metric([str(path)], 1)
            except (OSError, ssl.SSLError, ValueError, KeyError):
                readable.add_metric([str(path)], 0)
        yield expiry
        yield readable
