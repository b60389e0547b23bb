"""`opsctl mirror build` carries Debian's security data: fetched with the packages, kept when
the fetch fails (the build goes on), imported from a file, shown by `mirror show`.

apt and gpg are replaced by fakes that write a repository's files; the cache directory is a
temporary one; the fetcher never reaches the network.
"""

from __future__ import annotations

import gzip
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opsctl.errors import InvalidInput
from opsctl.mirror import build as mirror_build
from opsctl.mirror import secdata
from opsctl.mirror.show import describe

EXCERPT = Path(__file__).parent / "facts" / "debsec" / "tracker-excerpt.json"
PACKAGES = Path(__file__).parent / "facts" / "debsec" / "Packages"
TRACKER = "https://tracker.example/data/json"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private cache directory and fakes for apt's download and the signed index."""
    monkeypatch.setenv("OPSCTL_CACHE_DIR", str(tmp_path))
    # the machine's setting names the source (tests below without it: nothing is fetched)
    monkeypatch.setenv(secdata.URL_ENV, TRACKER)
    archives = tmp_path / "debs"
    archives.mkdir()

    def download(packages, work, **_kw):
        deb = archives / "sudo_1.9.13p3-1+deb12u1_amd64.deb"
        deb.write_bytes(b"deb")
        return [deb]

    def sign_index(repo, debs):
        (repo / "Packages").write_text(PACKAGES.read_text())
        for name in ("InRelease", mirror_build.PUBLIC_KEY):
            (repo / name).write_text(name)

    monkeypatch.setattr(mirror_build, "download", download)
    monkeypatch.setattr(mirror_build, "sign_index", sign_index)
    monkeypatch.setattr(mirror_build, "_deb_fields",
                        lambda p: {"name": p.name.split("_")[0], "file": p.name})
    return tmp_path


def excerpt(_source: str) -> secdata.Fetched:
    return secdata.Fetched(EXCERPT.read_bytes())  # a source that gives no time


def unreachable(source: str) -> secdata.Fetched:
    raise OSError(f"{source}: Temporary failure in name resolution")


def held(cache: Path) -> dict:
    return json.loads((cache / "mirror" / secdata.DATA_FILE).read_text())


def test_a_build_fetches_the_data_into_the_mirror(cache: Path) -> None:
    result = mirror_build.build(refresh=True, fetcher=excerpt)
    assert result.rebuilt and result.security is not None
    assert result.security.state == "fetched"
    doc = held(cache)
    assert doc["release"] == "bookworm" and doc["source"] == TRACKER
    assert "openssh" in doc["fixed"] and doc["sha256"]
    info = describe()
    assert info["security_data"]["fetched"] == result.security.fetched
    assert info["security_data"]["source_packages"] == 5


def test_a_failed_fetch_keeps_the_previous_data_and_the_build_goes_on(cache: Path) -> None:
    first = mirror_build.build(refresh=True, fetcher=excerpt)
    before = held(cache)
    again = mirror_build.build(refresh=True, fetcher=unreachable)
    assert again.rebuilt and again.security.state == "kept"
    assert again.security.fetched == first.security.fetched
    assert "\n" not in again.security.message
    assert "could not fetch it" in again.security.message
    assert f"kept the data fetched {first.security.fetched}" in again.security.message
    assert held(cache) == before


def test_a_failed_fetch_without_previous_data_says_the_mirror_has_none(cache: Path) -> None:
    result = mirror_build.build(refresh=True, fetcher=unreachable)
    assert result.rebuilt and result.security.state == "none"
    assert result.security.message.endswith("the mirror has none")
    assert not (cache / "mirror" / secdata.DATA_FILE).exists()
    assert describe()["security_data"] is None
    # and a scan then judges nothing: the check is an error with the reason
    judged = secdata.judge(cache / "mirror")({"installed": {}})
    assert judged == {"error": secdata.NO_DATA}


def test_a_current_mirror_fetches_only_what_it_lacks(cache: Path) -> None:
    mirror_build.build(refresh=True, fetcher=unreachable)  # built, no data
    calls: list[str] = []

    def counting(source: str) -> secdata.Fetched:
        calls.append(source)
        return excerpt(source)

    result = mirror_build.build(fetcher=counting)
    assert not result.rebuilt and result.security.state == "fetched" and len(calls) == 1
    result = mirror_build.build(fetcher=counting)  # current, with data: a no-op, offline
    assert result.security is None and len(calls) == 1


def test_data_gathered_out_of_band_is_imported_from_a_file(cache: Path,
                                                          tmp_path: Path) -> None:
    gathered = tmp_path / "json.gz"
    gathered.write_bytes(gzip.compress(EXCERPT.read_bytes()))
    mirror_build.build(refresh=True, fetcher=unreachable)
    result = mirror_build.build(security_data=str(gathered))  # the real fetcher, a file
    assert result.security.state == "fetched" and held(cache)["source"] == str(gathered)
    result = mirror_build.build(security_data=f"file://{EXCERPT}")
    assert held(cache)["source"] == f"file://{EXCERPT}"


def test_a_file_brought_in_is_as_old_as_its_modification_time(tmp_path: Path) -> None:
    """A copy of the JSON carried in weeks later must not pass for fresh data."""
    copy = tmp_path / "json"
    copy.write_bytes(EXCERPT.read_bytes())
    month_ago = datetime.now(UTC) - timedelta(days=30)
    os.utime(copy, (month_ago.timestamp(), month_ago.timestamp()))
    gathered = secdata.gather(str(copy))
    assert gathered.document is not None
    assert gathered.document["fetched"] == month_ago.isoformat(timespec="seconds")
    # a clock behind the file's time: never dated later than the build
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert secdata.gather(str(copy), now=now).document["fetched"] == now.isoformat(
        timespec="seconds")
    # a source that gives no time is dated by the build
    assert secdata.gather(TRACKER, excerpt, now=now).document["fetched"] == now.isoformat(
        timespec="seconds")


def test_a_named_source_that_is_not_the_trackers_json_stops_before_any_change(
        cache: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "the tracker"}')
    with pytest.raises(InvalidInput, match="--security-data"):
        mirror_build.build(refresh=True, security_data=str(bad))
    assert not (cache / "mirror").exists()
    with pytest.raises(InvalidInput, match="could not fetch it"):
        mirror_build.build(refresh=True, security_data=str(tmp_path / "missing.json"))


def test_nothing_is_fetched_unless_a_source_was_named(cache: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """No traffic to Debian's tracker unasked: the machine that builds the mirror may reach
    Debian's archive and nothing else. The build goes on and says how to name a source."""
    monkeypatch.delenv(secdata.URL_ENV)
    calls: list[str] = []

    def counting(source: str) -> secdata.Fetched:
        calls.append(source)
        return excerpt(source)

    result = mirror_build.build(refresh=True, fetcher=counting)
    assert calls == [] and result.rebuilt and result.security.state == "none"
    assert "--security-data URL|FILE" in result.security.message
    assert "security-tracker.debian.org" in result.security.message
    assert mirror_build.build(fetcher=counting).security is None and calls == []


def test_the_source_named_once_is_fetched_again_on_the_next_build(
        cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(secdata.URL_ENV)
    named = tmp_path / "tracker.json"
    named.write_bytes(EXCERPT.read_bytes())
    mirror_build.build(refresh=True, security_data=str(named))
    calls: list[str] = []

    def counting(source: str) -> secdata.Fetched:
        calls.append(source)
        return excerpt(source)

    again = mirror_build.build(refresh=True, fetcher=counting)
    assert calls == [str(named)] and again.security.state == "fetched"
    assert secdata.default_source(cache / "mirror") == str(named)
    monkeypatch.setenv(secdata.URL_ENV, "https://mirror.example/tracker.json")
    assert secdata.default_source(cache / "mirror") == "https://mirror.example/tracker.json"


def test_unreadable_data_in_the_mirror_is_an_error_with_the_remedy(tmp_path: Path) -> None:
    (tmp_path / secdata.DATA_FILE).write_text("{broken")
    judged = secdata.judge(tmp_path)({"installed": {}})
    assert "unreadable" in judged["error"] and "mirror build --refresh" in judged["error"]
