"""Issuing: the site's own certificate authority and one certificate per host (openssl at the edge).

Graded protection asks for encrypted channels between the platform's parts (TLS to the
databases, the balancer, the monitoring agents). A site gets a CA made once on the control
node; each host gets a key and certificate for its name and address, reissued when the
host's address changes or the certificate nears expiry. Keys never leave the state
directory except to their own host (over SSH, by the `pki` role).
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from opsctl.errors import NotFound, OpsctlError, PrerequisiteMissing
from opsctl.paths import ensure_private_dir, state_dir
from opsctl.site.model import Site

CA_DAYS = 3650
HOST_DAYS = 397
RENEW_BEFORE_DAYS = 30


class PkiError(OpsctlError):
    exit_code = 1


@dataclass(frozen=True)
class SitePki:
    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    def host_cert(self, host: str) -> Path:
        return self.directory / "hosts" / f"{host}.crt"

    def host_key(self, host: str) -> Path:
        return self.directory / "hosts" / f"{host}.key"


def pki_dir(site_name: str) -> Path:
    return state_dir() / "pki" / site_name


def _openssl(*args: str, stdin: str | None = None) -> str:
    try:
        done = subprocess.run(["openssl", *args], input=stdin, capture_output=True, text=True,
                              timeout=60, check=False)
    except FileNotFoundError:
        raise PrerequisiteMissing("openssl is not installed (run ./setup)") from None
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()
        raise PkiError(f"openssl {args[0]}: {detail[-1] if detail else 'failed'}")
    return done.stdout


def _expires_within(cert: Path, days: int) -> bool:
    try:
        subprocess.run(["openssl", "x509", "-checkend", str(days * 86400), "-noout", "-in",
                        str(cert)], capture_output=True, check=True, timeout=30)
    except subprocess.CalledProcessError:
        return True
    return False


def _subject_alt_names(cert: Path) -> set[str]:
    out = _openssl("x509", "-noout", "-ext", "subjectAltName", "-in", str(cert))
    names = set()
    for part in out.replace("\n", ",").split(","):
        part = part.strip()
        if part.startswith("DNS:"):
            names.add(f"DNS:{part[4:]}")
        elif part.startswith("IP Address:"):
            names.add(f"IP:{part[11:]}")
    return names


def wanted_names(site: Site, host: str) -> set[str]:
    """The names a host's certificate must carry: its name and its site address."""
    address = site.hosts[host].address
    return {f"DNS:{host}", f"IP:{ipaddress.IPv4Address(address)}"}


def ensure_ca(site: Site) -> SitePki:
    pki = SitePki(ensure_private_dir(pki_dir(site.name)))
    if pki.ca_cert.exists() and pki.ca_key.exists() and not _expires_within(pki.ca_cert, 365):
        return pki
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-out", str(pki.ca_key))
    os.chmod(pki.ca_key, 0o600)
    _openssl("req", "-x509", "-new", "-key", str(pki.ca_key), "-sha256",
             "-days", str(CA_DAYS), "-subj", f"/O=opsctl/OU={site.name}/CN=opsctl {site.name} CA",
             "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-out", str(pki.ca_cert))
    return pki


def existing(site: Site) -> SitePki:
    """The site's PKI as it stands (read-only: nothing is made); NotFound before the first
    apply made it."""
    pki = SitePki(pki_dir(site.name))
    if not pki.ca_cert.exists():
        raise NotFound(f"site {site.name} has no CA yet ({pki.ca_cert}): `opsctl apply` "
                       "makes it and the host certificates")
    return pki


def reissue(site: Site, hosts: list[str]) -> SitePki:
    """A new key and certificate for each of `hosts`, whatever their current ones' age, from
    the site's CA as it is (a new CA is `pki rotate --ca`'s business, never a side effect)."""
    pki = existing(site)
    ensure_private_dir(pki.directory / "hosts")
    for host in hosts:
        _issue(pki, host, wanted_names(site, host))
    return pki


def ensure_host_certificates(site: Site) -> tuple[SitePki, list[str]]:
    """A current certificate for every host; returns the hosts (re)issued this time."""
    pki = ensure_ca(site)
    ensure_private_dir(pki.directory / "hosts")
    issued = []
    for host in sorted(site.hosts):
        cert, key = pki.host_cert(host), pki.host_key(host)
        wanted = wanted_names(site, host)
        if (cert.exists() and key.exists() and not _expires_within(cert, RENEW_BEFORE_DAYS)
                and _subject_alt_names(cert) == wanted
                and cert.stat().st_mtime >= pki.ca_cert.stat().st_mtime):
            continue
        _issue(pki, host, wanted)
        issued.append(host)
    return pki, issued


def _issue(pki: SitePki, host: str, names: set[str]) -> None:
    """Key and certificate made beside the current pair, then renamed over it: a failure
    half-way leaves the old, matching pair in place."""
    final_key, final_cert = pki.host_key(host), pki.host_cert(host)
    key, cert = final_key.with_suffix(".key.new"), final_cert.with_suffix(".crt.new")
    csr = final_key.with_suffix(".csr")
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-out", str(key))
    os.chmod(key, 0o600)
    _openssl("req", "-new", "-key", str(key), "-subj", f"/O=opsctl/CN={host}", "-out", str(csr))
    extensions = final_key.with_suffix(".ext")
    extensions.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
        f"subjectAltName={','.join(sorted(names))}\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(pki.ca_cert), "-CAkey", str(pki.ca_key),
             "-CAcreateserial", "-days", str(HOST_DAYS), "-sha256", "-extfile", str(extensions),
             "-out", str(cert))
    csr.unlink()
    extensions.unlink()
    os.replace(key, final_key)
    os.replace(cert, final_cert)
    # Later than the CA, whatever the clock's resolution: the freshness test compares mtimes.
    now = time.time()
    os.utime(final_cert, (now, max(now, pki.ca_cert.stat().st_mtime)))
