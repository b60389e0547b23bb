"""Debian's security data: the tracker's JSON reduced for bookworm, Debian version order, a
host's binaries mapped to their sources, and `packages_known_vulnerable`'s outcomes.

Recorded data under facts/debsec/: an excerpt in the shape of the security tracker's JSON
(tracker-excerpt.json, our own entries), a mirror's Packages index, a host's packages facts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from security.collector import parse_dpkg_status
from security.debsec import (
    FORMAT,
    MAX_DATA_AGE,
    SecurityData,
    SecurityDataError,
    SecurityJudge,
    assess,
    host_facts,
    installed_sources,
    mirror_sources,
    reduce_tracker,
)
from security.evaluate import ERROR, FAIL, PASS, evaluate_target
from security.local import evaluate_facts
from security.schema import load_catalog
from security.versions import compare_versions

DATA = Path(__file__).parent / "facts" / "debsec"
FETCHED = "2026-12-01T02:00:00+00:00"
# The scans here run a day after the data was fetched (the age bound has its own tests).
SCANNED = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)


def tracker() -> dict:
    return json.loads((DATA / "tracker-excerpt.json").read_text())


def reduced() -> dict:
    return reduce_tracker(tracker(), fetched=FETCHED, source="tracker-excerpt.json")


def data() -> SecurityData:
    return SecurityData.from_document(reduced())


def mirror() -> dict[str, str]:
    return mirror_sources((DATA / "Packages").read_text())


def host() -> dict:
    doc = json.loads((DATA / "host-packages.json").read_text())
    doc.pop("_comment")
    return doc


# ---------------------------------------------------------------- the tracker's JSON

def test_the_excerpt_reduces_to_bookworm_fixes_grouped_by_fixed_version() -> None:
    doc = reduced()
    assert doc["format"] == FORMAT and doc["release"] == "bookworm"
    assert doc["fetched"] == FETCHED
    assert doc["fixed"]["openssh"] == {
        "1:8.7p1-1": [["CVE-2021-41617", "not yet assigned"]],
        "1:9.2p1-2+deb12u2": [["CVE-2023-48795", "medium"], ["CVE-2023-51385", "medium"]],
        "1:9.2p1-2+deb12u3": [["CVE-2024-6387", "high"]],
        "1:9.2p1-2+deb12u5": [["CVE-2025-26465", "medium"]],
    }
    # the tracker's "**" note is not part of the urgency
    assert doc["fixed"]["openssl"]["3.0.14-1~deb12u1"] == [["CVE-2024-5535", "low"]]


def test_fixed_version_0_means_never_vulnerable_and_is_left_out() -> None:
    doc = reduced()
    assert "CVE-2008-3844" not in json.dumps(doc["fixed"]["openssh"])
    assert "sudo" in doc["fixed"] and "CVE-2025-32463" not in json.dumps(doc)


def test_open_and_undetermined_are_kept_apart_and_other_releases_ignored() -> None:
    doc = reduced()
    assert doc["open"]["openssh"] == [["CVE-2016-20012", "unimportant"]]
    assert doc["open"]["openssl"] == [["CVE-2024-13176", "not yet assigned"]]
    assert "libxml2" not in doc["fixed"] and "libxml2" not in doc["open"]  # bullseye only


@pytest.mark.parametrize("raw", [[], {}, {"openssh": {"CVE-1": {"releases": {"bullseye": {}}}}},
                                 "text"])
def test_what_is_not_the_trackers_json_is_refused(raw: object) -> None:
    with pytest.raises(SecurityDataError):
        reduce_tracker(raw, fetched=FETCHED, source="x")


def test_the_reduced_document_reads_back_and_refuses_another_format() -> None:
    loaded = data()
    assert loaded.cve_count == 16 and len(loaded.fixed) == 5
    assert loaded.newest_fix("openssh") == "1:9.2p1-2+deb12u5"
    assert "fetched 2026-12-01T02:00:00+00:00" in loaded.summary()
    with pytest.raises(SecurityDataError):
        SecurityData.from_document({"format": "opsctl-debsec/0"})
    with pytest.raises(SecurityDataError):
        SecurityData.from_document({"format": FORMAT, "fixed": []})


# ---------------------------------------------------------------- deb-version(7)

VERSION_CASES = [
    # epochs: a higher epoch wins whatever follows; no epoch is epoch 0
    ("1:1.0", "2.0", 1), ("0:1.0", "1.0", 0), ("1:9.2p1-2+deb12u3", "1:9.2p1-2+deb12u2", 1),
    ("2:9.0.1378-2", "1:9.1-1", 1),
    # tildes sort before anything, even the end of the string
    ("1.0~rc1", "1.0", -1), ("1.0~~", "1.0~", -1), ("1.0~", "1.0", -1),
    ("1.0~rc1-1", "1.0-1", -1), ("3.0.13-1~deb12u1", "3.0.13-1", -1),
    ("3.0.13-1~deb12u1", "3.0.11-1~deb12u2", 1),
    # letters sort before non-letters; numbers compare as numbers
    ("1.0a", "1.0", 1), ("1.0a", "1.0+", -1), ("1.0+", "1.0.", -1), ("1.10", "1.9", 1),
    ("1.01", "1.1", 0), ("2.36-9+deb12u10", "2.36-9+deb12u9", 1),
    # the revision: absent is "0"; the last hyphen splits it off; binNMUs sort after
    ("1.0-1", "1.0", 1), ("1.0-0", "1.0", 0), ("1.2-3-4", "1.2-3-3", 1),
    ("1.5.4+dfsg2-5+b1", "1.5.4+dfsg2-5", 1), ("15.10-0+deb12u1", "15.8-0+deb12u1", 1),
    ("1.9.13p3-1+deb12u1", "1.9.12p2-1", 1),
]


@pytest.mark.parametrize(("a", "b", "expected"), VERSION_CASES)
def test_debian_version_order(a: str, b: str, expected: int) -> None:
    assert compare_versions(a, b) == expected
    assert compare_versions(b, a) == -expected


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="dpkg is not installed here")
def test_the_order_agrees_with_dpkg() -> None:
    for a, b, expected in VERSION_CASES:
        op = {1: "gt", 0: "eq", -1: "lt"}[expected]
        done = subprocess.run(["dpkg", "--compare-versions", a, op, b], check=False)
        assert done.returncode == 0, f"dpkg disagrees: {a} {op} {b}"


# ---------------------------------------------------------------- binaries and sources

def test_the_collector_reads_each_binarys_source_as_dpkg_does() -> None:
    status = (
        "Package: libssl3\nStatus: install ok installed\nSource: openssl\n"
        "Version: 3.0.15-1~deb12u1\n\n"
        "Package: libzstd1\nStatus: install ok installed\nSource: libzstd (1.5.4+dfsg2-5)\n"
        "Version: 1.5.4+dfsg2-5+b1\n\n"
        "Package: sudo\nStatus: install ok installed\nVersion: 1.9.13p3-1+deb12u1\n\n"
        "Package: telnetd\nStatus: deinstall ok config-files\nVersion: 0.17+2.4-2\n"
    )
    facts = parse_dpkg_status(status)
    assert facts["count"] == 3
    assert facts["installed"]["libzstd1"] == "1.5.4+dfsg2-5+b1"
    assert facts["sources"] == {"libssl3": ["openssl", "3.0.15-1~deb12u1"],
                                "libzstd1": ["libzstd", "1.5.4+dfsg2-5"],
                                "sudo": ["sudo", "1.9.13p3-1+deb12u1"]}


def test_binaries_group_by_source_and_one_without_an_entry_is_its_own_source() -> None:
    groups = installed_sources({"installed": {"libssl3": "3.0.11-1~deb12u2",
                                              "openssl": "3.0.11-1~deb12u2", "vim": "2:9.0-1"},
                                "sources": {"libssl3": ["openssl", "3.0.11-1~deb12u2"],
                                            "openssl": ["openssl", "3.0.11-1~deb12u2"]}})
    assert groups == {("openssl", "3.0.11-1~deb12u2"): ["libssl3", "openssl"],
                      ("vim", "2:9.0-1"): ["vim"]}


def test_the_mirror_index_gives_source_versions_binnmus_included() -> None:
    carried = mirror()
    assert carried["libzstd1"] == "1.5.4+dfsg2-5"  # Source: libzstd (1.5.4+dfsg2-5)
    assert carried["libssl3"] == "3.0.15-1~deb12u1"
    assert "postgresql-15" not in carried


# ---------------------------------------------------------------- judging a host

def test_fixes_split_by_whether_the_mirror_carries_them() -> None:
    found = assess(host(), data(), mirror())
    in_mirror = {f.source: f for f in found.fixed_in_mirror}
    not_in = {f.source: f for f in found.fix_not_in_mirror}
    assert set(in_mirror) == {"openssh", "openssl"}
    assert [c for c, _ in in_mirror["openssh"].cves] == ["CVE-2024-6387"]  # u2 fixes: not
    assert in_mirror["openssl"].fixed == "3.0.15-1~deb12u1"
    assert len(in_mirror["openssl"].cves) == 4
    assert set(not_in) == {"openssh", "openssl", "glibc", "postgresql-15"}
    assert not_in["glibc"].mirror == "2.36-9+deb12u4" and not_in["glibc"].urgency == "high"
    assert not_in["postgresql-15"].missing_from_mirror == ("postgresql-15",)
    assert "sudo" not in in_mirror | not_in and "libzstd" not in in_mirror | not_in
    assert found.binaries == 9 and found.sources == 7 and found.open_cves == 3


def test_the_facts_list_cve_ids_per_source_package_with_counts_and_the_date() -> None:
    facts = host_facts(host(), data(), mirror(), SCANNED)
    assert FETCHED in facts["data"]
    assert facts["fixed_in_mirror"][0].startswith(
        "openssh 1:9.2p1-2+deb12u2 (openssh-client, openssh-server): fixed in "
        "1:9.2p1-2+deb12u3, the mirror has 1:9.2p1-2+deb12u3: 1 CVE, urgency high: "
        "CVE-2024-6387")
    glibc = next(line for line in facts["fix_not_in_mirror"] if line.startswith("glibc"))
    assert "mirror not refreshed (it has 2.36-9+deb12u4)" in glibc and "CVE-2024-2961" in glibc
    pg = next(line for line in facts["fix_not_in_mirror"] if line.startswith("postgresql"))
    assert "the mirror does not carry postgresql-15" in pg
    assert facts["counts"] == {"fixed_in_mirror_sources": 2, "fixed_in_mirror_cves": 5,
                               "fix_not_in_mirror_sources": 4, "fix_not_in_mirror_cves": 6,
                               "open_cves": 3}


def test_the_evidence_stays_bounded() -> None:
    doc = {"format": FORMAT, "release": "bookworm", "fetched": FETCHED, "source": "x",
           "fixed": {f"src{i}": {"2.0-1": [[f"CVE-2026-{i:02d}{j:03d}", "low"]
                                          for j in range(30)]} for i in range(40)},
           "open": {}}
    packages = {"installed": {f"bin{i}": "1.0-1" for i in range(40)},
                "sources": {f"bin{i}": [f"src{i}", "1.0-1"] for i in range(40)}}
    facts = host_facts(packages, SecurityData.from_document(doc), {}, SCANNED)
    lines = facts["fix_not_in_mirror"]
    assert len(lines) == 21 and lines[-1] == "… 20 more source packages, 600 CVEs"
    assert lines[0].endswith(", +20 more") and lines[0].count("CVE-2026-") == 10


def check(cid: str = "packages_known_vulnerable"):
    return [c for c in load_catalog() if c.id == cid]


def judged(packages: dict, mirror_index: dict[str, str], scanned: datetime = SCANNED):
    facts = {"packages": packages,
             "debian_security": host_facts(packages, data(), mirror_index, scanned)}
    [result] = evaluate_target("h", "host", check(), facts).results
    return result


def test_a_fix_the_mirror_carries_fails_the_check() -> None:
    only_in_mirror = {"installed": {"openssh-server": "1:9.2p1-2+deb12u2"},
                      "sources": {"openssh-server": ["openssh", "1:9.2p1-2+deb12u2"]}}
    result = judged(only_in_mirror, {"openssh-server": "1:9.2p1-2+deb12u5"})
    assert result.status == FAIL and result.major_risk
    assert "debian_security.fixed_in_mirror is" in result.reason
    assert "fix_not_in_mirror" not in result.reason
    assert "CVE-2024-6387" in json.dumps([e.as_dict() for e in result.evidence])
    assert result.remediation == "opsctl patch"  # rolling, in the platform's order


def test_a_fix_the_mirror_lacks_fails_with_its_own_reason() -> None:
    behind = {"installed": {"libc6": "2.36-9+deb12u4"},
              "sources": {"libc6": ["glibc", "2.36-9+deb12u4"]}}
    result = judged(behind, mirror())
    assert result.status == FAIL
    assert "debian_security.fix_not_in_mirror is" in result.reason
    assert "mirror not refreshed" in result.reason
    assert "fixed_in_mirror is" not in result.reason
    [ok, lacking] = [e for e in result.evidence if e.note is None]
    assert ok.ok is True and lacking.ok is False
    # the data's date is shown with the result
    assert any(e.note and FETCHED in e.note for e in result.evidence)


def test_up_to_date_packages_pass_and_say_what_was_checked() -> None:
    current = {"installed": {"openssh-server": "1:9.2p1-2+deb12u5", "libc6": "2.36-9+deb12u7",
                             "sudo": "1.9.13p3-1+deb12u1"},
               "sources": {"openssh-server": ["openssh", "1:9.2p1-2+deb12u5"],
                           "libc6": ["glibc", "2.36-9+deb12u7"]}}
    result = judged(current, mirror())
    assert result.status == PASS
    assert "3 installed packages from 3 source packages" in result.reason


CURRENT = {"installed": {"openssh-server": "1:9.2p1-2+deb12u5", "libc6": "2.36-9+deb12u7"},
           "sources": {"openssh-server": ["openssh", "1:9.2p1-2+deb12u5"],
                       "libc6": ["glibc", "2.36-9+deb12u7"]}}


def test_data_older_than_the_bound_cannot_pass_a_host() -> None:
    """Fixes Debian published after the data was fetched are unknown to it: the verdict may
    not claim more than the data's date allows."""
    fetched = datetime.fromisoformat(FETCHED)
    assert judged(CURRENT, mirror(), fetched + MAX_DATA_AGE).status == PASS  # at the bound
    late = fetched + MAX_DATA_AGE + timedelta(days=3)
    result = judged(CURRENT, mirror(), late)
    assert result.status == ERROR
    assert f"fetched {FETCHED}" in result.reason
    assert "fetched 10 days ago" in result.reason and "at most 7 days old" in result.reason
    assert "opsctl mirror build --refresh" in result.reason


def test_old_data_still_fails_a_host_for_the_fixes_it_knows() -> None:
    behind = {"installed": {"openssh-server": "1:9.2p1-2+deb12u2"},
              "sources": {"openssh-server": ["openssh", "1:9.2p1-2+deb12u2"]}}
    late = datetime.fromisoformat(FETCHED) + timedelta(days=30)
    result = judged(behind, {"openssh-server": "1:9.2p1-2+deb12u5"}, late)
    assert result.status == FAIL and "CVE-2024-6387" in json.dumps(
        [e.as_dict() for e in result.evidence])
    assert any(e.note and "fetched 30 days ago" in e.note for e in result.evidence)


def test_data_whose_date_cannot_be_read_cannot_pass_a_host() -> None:
    doc = {**reduced(), "fetched": "yesterday"}
    facts = host_facts(CURRENT, SecurityData.from_document(doc), mirror(), SCANNED)
    assert facts == {"error": facts["error"]} and "('yesterday') cannot be read" in facts["error"]


def test_the_judge_takes_the_scans_time_once() -> None:
    before = datetime.now(UTC)
    judge = SecurityJudge(data(), mirror())
    assert before <= judge.now <= datetime.now(UTC)

    def fetched(when: datetime) -> SecurityData:
        return SecurityData.from_document({**reduced(), "fetched": when.isoformat()})

    stale = fetched(before - MAX_DATA_AGE - timedelta(hours=1))
    assert "error" in SecurityJudge(stale, mirror())(CURRENT)
    assert SecurityJudge(fetched(before), mirror())(CURRENT)["fixed_in_mirror"] == []


def test_without_security_data_the_check_is_an_error_never_a_pass() -> None:
    collected = {"schema": "opsctl-facts/1", "host": "h", "facts": {"packages": host()}}
    [result] = evaluate_facts(collected, check(), {}).results
    assert result.status == ERROR and "no Debian security data" in result.reason
    from opsctl.mirror.secdata import NO_DATA, judge  # noqa: PLC0415

    [result] = evaluate_facts(collected, check(), {}, security=judge(DATA / "nothing")).results
    assert result.status == ERROR and NO_DATA in result.reason
    assert "run opsctl mirror build" in result.reason


def test_a_host_whose_packages_could_not_be_read_is_an_error() -> None:
    judge = SecurityJudge(data(), mirror(), SCANNED)
    assert judge({"error": "/var/lib/dpkg/status: EACCES"}) == {
        "error": "packages: /var/lib/dpkg/status: EACCES"}
    collected = {"schema": "opsctl-facts/1", "host": "h",
                 "facts": {"packages": {"error": "EACCES"}}}
    [result] = evaluate_facts(collected, check(), {}, security=judge).results
    assert result.status == ERROR and "EACCES" in result.reason


def test_fixed_between_is_newer_than_installed_and_at_most_the_upgrade():
    from security.debsec import SecurityData, fixed_between

    data = SecurityData.from_document({
        "format": "opsctl-debsec/1", "release": "bookworm", "fetched": "f", "source": "s",
        "open": {}, "fixed": {"openssl": {
            "3.0.15-1~deb12u1": [["CVE-2024-1", "high"]],
            "3.0.17-1~deb12u2": [["CVE-2025-2", "low"], ["CVE-2025-3", "high"]],
            "3.0.18-1~deb12u1": [["CVE-2026-4", "medium"]]}}})
    assert fixed_between(data, "openssl", "3.0.15-1~deb12u1", "3.0.17-1~deb12u2") == (
        ("CVE-2025-3", "high"), ("CVE-2025-2", "low"))
    assert fixed_between(data, "openssl", "3.0.18-1~deb12u1", "3.0.19-1") == ()
    assert fixed_between(data, "zlib", "1", "2") == ()
