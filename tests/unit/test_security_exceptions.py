"""A site's documented exceptions: validation, evaluation, and how each report shows them."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
import yaml
from security_fixtures import passing_host

from opsctl.check import fleet
from opsctl.check.exceptions import SiteExceptions, load_site_exceptions
from opsctl.check.html import render_html
from opsctl.check.junit import render_junit
from opsctl.check.render import TableRenderer
from opsctl.check.scan import Scan, catalog
from opsctl.cli.main import main
from opsctl.errors import InvalidInput
from opsctl.site.model import load_site
from security.evaluate import (
    CONFORM,
    EXCEPTION,
    FAIL,
    MANUAL,
    PASS,
    apply_exceptions,
    evaluate_target,
    exception_report,
    scan_document,
)
from security.exceptions import ExceptionEntry

ROOT = Path(__file__).resolve().parents[2]
TODAY = dt.date(2026, 6, 1)
CHECK = "sshd_login_grace_time"


def entry(hosts: object = ("h1",), expires: str = "2026-12-31",
          check: str = CHECK) -> ExceptionEntry:
    return ExceptionEntry.model_validate({
        "check": check, "hosts": hosts if hosts == "all" else list(hosts),
        "reason": "legacy jump host", "compensating_control": "vendor firewall",
        "approver": "security officer", "expires": expires})


def failing_grace() -> dict:
    facts = passing_host()
    facts["sshd"]["logingracetime"] = 120
    return facts


def scanned(name: str, facts: dict, exceptions: list[ExceptionEntry]):
    target = evaluate_target(name, "host", catalog(3), facts)
    return apply_exceptions(target, exceptions, TODAY)


def result(target, check_id: str = CHECK):
    return next(r for r in target.results if r.id == check_id)


def unit_of(target, check_id: str = CHECK):
    r = result(target, check_id)
    return next(u for u in target.units if u.unit == r.unit)


def test_exception_turns_a_fail_into_exception_only_on_the_named_host() -> None:
    covered = scanned("h1", failing_grace(), [entry()])
    other = scanned("h2", failing_grace(), [entry()])
    r = result(covered)
    assert r.status == EXCEPTION
    assert r.evidence and any(e.ok is False for e in r.evidence)  # the failing evidence stays
    assert r.exception["approver"] == "security officer"
    assert r.exception["state"] == "applied"
    assert covered.counts()[EXCEPTION] == 1
    assert result(other).status == FAIL and result(other).exception is None


def test_a_unit_with_an_exception_is_never_conformant() -> None:
    target = scanned("h1", failing_grace(), [entry()])
    unit = unit_of(target)
    assert unit.verdict == MANUAL != CONFORM
    assert unit.exceptions == (CHECK,)
    assert unit.as_dict()["exceptions"] == [CHECK]


def test_expired_exception_does_not_apply() -> None:
    target = scanned("h1", failing_grace(), [entry(expires="2026-05-31")])
    r = result(target)
    assert r.status == FAIL
    assert "expired on 2026-05-31" in r.reason
    assert r.exception["state"] == "expired"
    [report] = exception_report([target], [entry(expires="2026-05-31")], TODAY)
    assert report["state"] == "expired" and report["failing_on"] == ["h1"]


def test_an_exception_valid_through_its_expiry_day() -> None:
    target = scanned("h1", failing_grace(), [entry(expires=TODAY.isoformat())])
    assert result(target).status == EXCEPTION


def test_unused_exception_is_reported_and_the_pass_stays() -> None:
    target = scanned("h1", passing_host(), [entry()])
    assert result(target).status == PASS and result(target).exception is None
    [report] = exception_report([target], [entry()], TODAY)
    assert report["state"] == "unused" and report["unused_on"] == ["h1"]


def test_major_risk_under_exception_stays_listed() -> None:
    major = next(c for c in catalog(3) if c.spec.major_risk and c.spec.scope == "host")
    base = evaluate_target("h1", "host", catalog(3), passing_host())
    from dataclasses import replace  # noqa: PLC0415

    failed = replace(base, results=[replace(r, status=FAIL) if r.id == major.id else r
                                    for r in base.results])
    target = apply_exceptions(failed, [entry(check=major.id)], TODAY)
    assert result(target, major.id).status == EXCEPTION
    assert major.id in target.major_risks
    assert target.major_risks_under_exception == [major.id]
    assert unit_of(target, major.id).verdict == MANUAL


# ---------------------------------------------------------------- the file

def site_copy(tmp_path: Path, content: object) -> Path:
    site = tmp_path / "example-bastion"
    shutil.copytree(ROOT / "inventory" / "example-bastion", site)
    path = site / "security" / "exceptions.yml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content),
                    encoding="utf-8")
    return site


def good(**change: object) -> list[dict]:
    item = {"check": CHECK, "hosts": ["ex-app1"], "reason": "r", "compensating_control": "c",
            "approver": "a", "expires": "2027-01-31"}
    item.update(change)
    return [{k: v for k, v in item.items() if v is not None}]


def test_example_site_exceptions_validate() -> None:
    loaded = load_site_exceptions(load_site("example-bastion"))
    assert loaded.entries


@pytest.mark.parametrize(("content", "key", "words"), [
    (good(check="no_such_check"), "[0].check", "no check"),
    (good(hosts=["nowhere"]), "[0].hosts", "no host 'nowhere'"),
    (good(approver=None), "[0].approver", "missing"),
    (good(expires="soon"), "[0].expires", "YYYY-MM-DD"),
    (good(hosts="some"), "[0].hosts", '"all"'),
    ({"check": CHECK}, "", "expected a list"),
    ("- check: [unclosed\n", "line", "not valid YAML"),
])
def test_schema_errors_are_one_line(tmp_path: Path, content: object, key: str,
                                    words: str) -> None:
    site = load_site(site_copy(tmp_path, content))
    with pytest.raises(InvalidInput) as caught:
        load_site_exceptions(site)
    [line] = caught.value.lines()
    assert "security/exceptions.yml" in line and key in line and words in line


def test_cli_exits_2_before_scanning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    site = site_copy(tmp_path, good(check="no_such_check"))

    def no_scan(*_a: object, **_k: object) -> None:
        raise AssertionError("scanned despite a broken exceptions file")

    monkeypatch.setattr(fleet, "for_site", no_scan, raising=False)
    monkeypatch.setattr("opsctl.transport.for_site", no_scan)
    monkeypatch.setattr(fleet, "scan_site", no_scan)
    monkeypatch.setattr("opsctl.check.scan.scan_this_host", no_scan)
    for argv in (["check", "--site", str(site)], ["check", "--local", "--site", str(site)]):
        with pytest.raises(SystemExit) as done:
            main(argv)
        assert done.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "[0].check: no check 'no_such_check'" in err[0]


def test_scan_site_applies_exceptions(tmp_path: Path) -> None:
    site = load_site(site_copy(tmp_path, good(hosts=["ex-app1"])))
    collected = json.loads((ROOT / "tests/unit/facts/control-node.json").read_text())

    def transport(host: str, _script: str) -> fleet.Completed:
        return fleet.Completed(0, json.dumps(collected), "")

    exc = load_site_exceptions(site, TODAY)
    scan = fleet.scan_site(site, limit=["ex-app1", "ex-app2"], transport=transport,
                           exceptions=exc)
    [report] = scan.document["exceptions"]
    assert report["check"] == CHECK and report["state"] in ("applied", "unused")
    assert "exception" in scan.document["targets"][0]["counts"]


# ---------------------------------------------------------------- the reports

def report_scan() -> Scan:
    exceptions = SiteExceptions((entry(), entry(check="sshd_max_auth_tries",
                                                expires="2026-01-01")), TODAY)
    facts = failing_grace()
    targets = exceptions.apply([evaluate_target("h1", "host", catalog(3), facts)])
    doc = scan_document(targets, 3, "t", 0.1, 1, exceptions.report(targets))
    return Scan(targets, 3, doc)


def test_json_document_carries_exceptions() -> None:
    doc = json.loads(json.dumps(report_scan().document))
    check = next(c for c in doc["targets"][0]["checks"] if c["id"] == CHECK)
    assert check["status"] == "exception" and check["exception"]["reason"] == "legacy jump host"
    states = {e["check"]: e["state"] for e in doc["exceptions"]}
    assert states == {CHECK: "applied", "sshd_max_auth_tries": "expired"}
    assert doc["targets"][0]["counts"]["exception"] == 1


def test_html_shows_exception_never_pass() -> None:
    html = render_html(report_scan().document, {})
    assert "例外 <span class=\"en\">exception</span>" in html
    assert "vendor firewall" in html and "security officer" in html
    row = html[html.index(f"<code>{CHECK}</code><") - 300:html.index(f"<code>{CHECK}</code><")]
    assert "通过" not in row.replace("不通过", "")


def test_junit_skips_an_exception_with_its_reason() -> None:
    xml = render_junit(report_scan().document)
    case = xml[xml.index(f'name="{CHECK}"'):]
    case = case[:case.index("</testcase>")]
    assert '<skipped type="exception"' in case and "legacy jump host" in case
    assert "<failure" not in case


def test_table_shows_exception_and_counts() -> None:
    from rich.console import Console  # noqa: PLC0415

    console = Console(record=True, width=200, color_system=None)
    TableRenderer().write(report_scan(), console)
    text = console.export_text()
    assert "1 exception" in text
    assert "site exceptions" in text and "expired" in text and "applied to h1" in text
