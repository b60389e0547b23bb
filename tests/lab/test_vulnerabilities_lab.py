"""packages_known_vulnerable on the lab's real hosts: each host's source packages, read from
dpkg's status there, judged on the control node against Debian's security tracker data in
the shape the mirror carries. The tracker file is written here (the real one cannot be
fetched on this machine), around the versions the hosts actually run."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opsctl.check.fleet import scan_site
from opsctl.lab import lifecycle
from opsctl.mirror import secdata
from opsctl.mirror.build import mirror_dir

CHECK = "packages_known_vulnerable"


def tracker(fixes: dict[str, dict[str, str]]) -> dict:
    """{source: {CVE: fixed version}} as the security tracker's JSON, resolved in bookworm."""
    return {source: {cve: {"description": "test", "scope": "local", "releases": {
        "bookworm": {"status": "resolved", "fixed_version": fixed, "urgency": "high",
                     "repositories": {"bookworm": fixed}}}} for cve, fixed in cves.items()}
            for source, cves in fixes.items()}


@pytest.fixture
def mirror_with(tmp_path: Path) -> Callable[..., secdata.SecurityFacts]:
    """The lab mirror's own index, with the given tracker data (None: no data at all)."""
    def make(doc: dict | None, age: timedelta | None = None) -> secdata.SecurityFacts:
        repo = tmp_path / "mirror"
        shutil.rmtree(repo, ignore_errors=True)
        repo.mkdir()
        shutil.copy(mirror_dir() / "Packages", repo / "Packages")
        if doc is not None:
            source = tmp_path / "tracker.json"
            source.write_text(json.dumps(doc))
            if age is not None:  # a copy brought in that long after it was made
                then = (datetime.now(UTC) - age).timestamp()
                os.utime(source, (then, then))
            gathered = secdata.gather(str(source))
            assert gathered.document is not None, gathered.problem
            secdata.store(repo, gathered)
        return secdata.judge(repo)
    return make


def source_version(site, host: str, package: str) -> str:
    code, out = lifecycle.ssh.remote(site, host, [
        "dpkg-query", "-W", "-f", "${source:Version}", package])
    assert code == 0, out
    return out


def verdicts(site, security) -> dict[str, dict]:
    doc = scan_site(site, security=security).document
    return {t["name"]: next(c for c in t["checks"] if c["id"] == CHECK)
            for t in doc["targets"] if t["scope"] == "host"}


def test_a_fix_newer_than_what_the_hosts_run_fails_every_host_naming_the_cve(reference,
                                                                            mirror_with):
    site, _ = reference
    sudo = source_version(site, "app1", "sudo")
    openssl = source_version(site, "db1", "libssl3")  # a binary whose source is openssl
    data = tracker({
        "sudo": {"CVE-2099-0001": f"{sudo}+opsctl1",  # newer than any host and the mirror
                 "CVE-2000-0002": "1.8.0-1"},          # long fixed: never reported
        "openssl": {"CVE-2000-0003": openssl},         # fixed in exactly what runs: fine
    })
    results = verdicts(site, mirror_with(data))
    assert set(results) == set(site.hosts)
    for host, check in results.items():
        text = json.dumps(check, ensure_ascii=False)
        assert check["status"] == "fail", (host, check["reason"])
        assert "CVE-2099-0001" in text and "mirror not refreshed" in text, (host, text)
        assert "CVE-2000-0002" not in text and "CVE-2000-0003" not in text, (host, text)


def test_fixes_the_hosts_already_run_pass_every_host(reference, mirror_with):
    site, _ = reference
    data = tracker({"sudo": {"CVE-2000-0002": "1.8.0-1"},
                    "openssl": {"CVE-2000-0003": source_version(site, "db1", "libssl3")},
                    "glibc": {"CVE-2000-0004": source_version(site, "app1", "libc6")}})
    results = verdicts(site, mirror_with(data))
    assert {h: c["status"] for h, c in results.items()} == dict.fromkeys(site.hosts, "pass")


def test_data_a_month_old_cannot_pass_a_host(reference, mirror_with):
    """The same data as the passing test above, brought in a month after it was fetched."""
    site, _ = reference
    data = tracker({"sudo": {"CVE-2000-0002": "1.8.0-1"},
                    "openssl": {"CVE-2000-0003": source_version(site, "db1", "libssl3")},
                    "glibc": {"CVE-2000-0004": source_version(site, "app1", "libc6")}})
    results = verdicts(site, mirror_with(data, age=timedelta(days=30)))
    assert set(results) == set(site.hosts)
    for host, check in results.items():
        assert check["status"] == "error", (host, check)
        assert "fetched 30 days ago" in check["reason"], (host, check["reason"])
        assert "opsctl mirror build --refresh" in check["reason"], (host, check["reason"])


def test_without_security_data_the_check_is_an_error_never_a_pass(reference, mirror_with):
    site, _ = reference
    results = verdicts(site, mirror_with(None))
    for host, check in results.items():
        assert check["status"] == "error", (host, check)
        assert "run opsctl mirror build" in check["reason"], (host, check["reason"])
