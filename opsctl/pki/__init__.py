"""The site's PKI: its CA and host certificates (issue), which service on which host uses
which certificate file (inventory), what the hosts hold and present against what was issued
(status), rotating them (rotate), and rolling the CA itself over with an overlap (rollover,
its phases kept in generations).

`opsctl.pki` keeps the names its callers import from the issuing module.
"""

from __future__ import annotations

from opsctl.pki.issue import (
    CA_DAYS,
    HOST_DAYS,
    RENEW_BEFORE_DAYS,
    PkiError,
    SitePki,
    ensure_ca,
    ensure_host_certificates,
    existing,
    pki_dir,
    reissue,
)

__all__ = ["CA_DAYS", "HOST_DAYS", "RENEW_BEFORE_DAYS", "PkiError", "SitePki", "ensure_ca",
           "ensure_host_certificates", "existing", "pki_dir", "reissue"]
