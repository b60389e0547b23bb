"""The site CA and host certificates: issued once, verifiable, reissued when a host moves."""

from __future__ import annotations

import subprocess

import yaml

from opsctl.pki import ensure_host_certificates
from opsctl.site import load_site


def test_every_host_gets_a_certificate_for_its_name_and_address(state_dir, site_copy):
    site = load_site(site_copy)
    pki, issued = ensure_host_certificates(site)
    assert issued == sorted(site.hosts)
    done = subprocess.run(["openssl", "verify", "-CAfile", str(pki.ca_cert),
                           str(pki.host_cert("db1"))], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    text = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in",
                           str(pki.host_cert("db1"))], capture_output=True, text=True).stdout
    assert "DNS:db1" in text and "IP Address:172.31.30.11" in text
    assert (pki.host_key("db1").stat().st_mode & 0o777) == 0o600
    assert (pki.ca_key.stat().st_mode & 0o777) == 0o600

    assert ensure_host_certificates(site)[1] == [], "a second call issues nothing"

    hosts = site_copy / "hosts.yml"
    data = yaml.safe_load(hosts.read_text())
    data["all"]["children"]["secure"]["hosts"]["db2"]["ansible_host"] = "172.31.30.13"
    hosts.write_text(yaml.safe_dump(data))
    assert ensure_host_certificates(load_site(site_copy))[1] == ["db2"]
