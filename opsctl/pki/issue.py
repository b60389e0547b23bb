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
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from opsctl.errors import NotFound, OpsctlError, PrerequisiteMissing
from opsctl.paths import ensure_private_dir, state_dir
from opsctl.pki import generations
from opsctl.site.model import Site

CA_DAYS = 3650
HOST_DAYS = 397
RENEW_BEFORE_DAYS = 30
# A CA this close to its end is rolled over (`pki rotate --ca`; pki status says so): its
# host certificates (397 days) must not outlive it.
CA_ROLL_BEFORE_DAYS = 400


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

    @property
    def trust(self) -> Path:
        """The CAs the hosts trust, one PEM bundle (the signing CA alone outside a rollover):
        the pki role installs it as pki_dir/ca.crt, apt's mirror CA too."""
        return self.directory / "trust.crt"

    @property
    def trust_dir(self) -> Path:
        """The same CAs one file each, for update-ca-certificates (it links one certificate
        per file)."""
        return self.directory / "trust.d"

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


def ca_subject(site_name: str, generation: int) -> str:
    """Each generation its own name: OpenSSL and GnuTLS pick an issuer from a bundle by
    name, so two CAs of one name in a bundle could be tried in the wrong order."""
    suffix = "" if generation == 1 else f" {generation}"
    return f"/O=opsctl/OU={site_name}/CN=opsctl {site_name} CA{suffix}"


def make_ca(key: Path, cert: Path, subject: str) -> None:
    """A CA key and self-signed certificate, each written beside its final name and renamed
    over it, the key first: a half-made pair is never left under the final names."""
    new_key, new_cert = key.with_name(key.name + ".new"), cert.with_name(cert.name + ".new")
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-out", str(new_key))
    os.chmod(new_key, 0o600)
    _openssl("req", "-x509", "-new", "-key", str(new_key), "-sha256",
             "-days", str(CA_DAYS), "-subj", subject,
             "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-out", str(new_cert))
    os.replace(new_key, key)
    os.replace(new_cert, cert)


def write_trust(pki: SitePki, cas: list[tuple[int, str]]) -> None:
    """The trust bundle and its one-file-per-CA copy from (generation, PEM) pairs, oldest
    generation first: the order stays the same through a rollover, so the switch of the
    signing CA leaves the hosts' bundle (and the services that loaded it) untouched."""
    ordered = sorted(cas)
    ensure_private_dir(pki.trust_dir)
    wanted = {f"ca-{generation}.crt" for generation, _ in ordered}
    for generation, pem in ordered:
        _write_public(pki.trust_dir / f"ca-{generation}.crt", pem)
    for stale in pki.trust_dir.glob("*.crt"):
        if stale.name not in wanted:
            stale.unlink()
    _write_public(pki.trust, "".join(pem for _, pem in ordered))


def _write_public(path: Path, text: str) -> None:
    if path.exists() and path.read_text(encoding="ascii") == text:
        return  # unchanged: its mtime (and Ansible's copy of it) stays as it was
    new = path.with_name(path.name + ".new")
    new.write_text(text, encoding="ascii")
    os.chmod(new, 0o644)
    os.replace(new, path)


def ensure_ca(site: Site) -> SitePki:
    """The site's CA, made when missing, and its trust bundle. An existing CA is never
    replaced here, even near its end: a new CA the hosts do not trust yet would cut every
    peer off; `opsctl pki rotate --ca` rolls it over with an overlap (pki status says when)."""
    pki = SitePki(ensure_private_dir(pki_dir(site.name)))
    generation = generations.load(pki.directory).generation
    made = not (pki.ca_cert.exists() and pki.ca_key.exists())
    if made:
        make_ca(pki.ca_key, pki.ca_cert, ca_subject(site.name, generation))
    if made or not pki.trust.exists():  # a new CA, or a site made before trust bundles
        write_trust(pki, [(generation, pki.ca_cert.read_text(encoding="ascii"))])
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
                and _subject_alt_names(cert) == wanted and signed_by(cert, pki.ca_cert)):
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


def signed_by(cert: Path, ca: Path) -> bool:
    """Whether the CA's key signed the certificate (its signature checked, not file times:
    after a rollover's switch every certificate of the old CA must be reissued)."""
    try:
        issued = x509.load_pem_x509_certificate(cert.read_bytes())
        issuer = x509.load_pem_x509_certificate(ca.read_bytes())
        issued.verify_directly_issued_by(issuer)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return False
    return True
