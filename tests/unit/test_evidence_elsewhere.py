"""Evidence held by another host: a database's backups are judged where its repository is,
and the database's verdict follows that host's, never claiming more than it shows."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pydantic import ValidationError
from security_fixtures import merge, passing_host

from opsctl.check.netfacts import host_context
from opsctl.site.model import load_site
from security.evaluate import (
    CONFORM,
    ERROR,
    EVIDENCE_ELSEWHERE_KIND,
    EXCEPTION,
    FAIL,
    MANUAL,
    NA,
    NONCONFORM,
    PASS,
    evaluate_target,
    follow_evidence,
)
from security.schema import NotApplicableWhen, load_catalog

CHECKS = load_catalog()
BACKUP_CHECKS = ("backup_recent", "backup_repository_encrypted")


def test_the_reference_sites_databases_keep_their_backups_on_bak1() -> None:
    site = load_site("reference")
    assert host_context(site, "db1")["backup_repository_hosts"] == ["bak1"]
    assert host_context(site, "db2")["backup_repository_hosts"] == ["bak1"]
    assert host_context(site, "bak1")["backup_repository_hosts"] == []
    assert host_context(site, "app1")["backup_repository_hosts"] == []
    assert host_context(None, None)["backup_repository_hosts"] == []


@pytest.mark.parametrize("fields", [
    {"kind": "evidence_elsewhere"},
    {"elsewhere": "context.backup_repository_hosts"},
    {"kind": "not_tested", "elsewhere": "context.backup_repository_hosts"},
])
def test_elsewhere_and_its_kind_go_together(fields: dict) -> None:
    with pytest.raises(ValidationError, match="elsewhere"):
        NotApplicableWhen(fact="context.groups", op="not_empty", reason="r", **fields)


def db_host(**context: object) -> dict:
    """A hardened database host without a repository of its own."""
    facts = merge(passing_host(), {"pgbackrest": {"repository_here": False,
                                                  "configured": True}})
    facts["context"] = {**facts["context"], "groups": ["db", "secure"],
                        "backup_repository_hosts": ["bak1"], **context}
    return facts


def bak_host(**pgbackrest: object) -> dict:
    return merge(passing_host(), {"pgbackrest": pgbackrest})


def result(target, check_id: str):
    return next(r for r in target.results if r.id == check_id)


def test_a_database_host_alone_says_where_its_evidence_is_and_is_not_evaluated() -> None:
    db1 = evaluate_target("db1", "host", CHECKS, db_host())
    for cid in BACKUP_CHECKS:
        r = result(db1, cid)
        assert (r.status, r.kind, r.evidence_on) == (NA, EVIDENCE_ELSEWHERE_KIND, ("bak1",))
        assert r.reason == "this database's backups are in the repository on: bak1"
        assert r.not_evaluated  # nothing passes on a promise
    # a host with no repository and no database stays plainly not applicable
    app1 = evaluate_target("app1", "host", CHECKS,
                           db_host(groups=["app"], backup_repository_hosts=[]))
    assert (result(app1, "backup_recent").status, result(app1, "backup_recent").kind) == (
        NA, "not_applicable")


def unit(target, unit_id: str):
    return next(u for u in target.units if u.unit == unit_id)


def test_the_database_follows_a_passing_backup_host() -> None:
    db1, bak1 = follow_evidence([evaluate_target("db1", "host", CHECKS, db_host()),
                                 evaluate_target("bak1", "host", CHECKS, bak_host())])
    r = result(db1, "backup_recent")
    assert (r.status, r.kind) == (PASS, EVIDENCE_ELSEWHERE_KIND)
    assert r.reason == "this database's backups are in the repository on: bak1; bak1: pass"
    assert any(e.where.startswith("bak1: ") and e.fact == "pgbackrest.newest_backup_hours"
               for e in r.evidence)
    assert result(db1, "backup_repository_encrypted").status == PASS
    # the step is now judged on evidence; the unit still has its manual step
    step = unit(db1, "L3-CES1-29").steps[0]
    assert step.status == PASS and step.checks["backup_recent"] == PASS
    assert unit(db1, "L3-CES1-29").verdict == MANUAL
    assert bak1 == evaluate_target("bak1", "host", CHECKS, bak_host())  # untouched


def test_the_database_follows_a_failing_backup_host() -> None:
    stale = bak_host(newest_backup_hours=50)
    db1, _ = follow_evidence([evaluate_target("db1", "host", CHECKS, db_host()),
                              evaluate_target("bak1", "host", CHECKS, stale)])
    r = result(db1, "backup_recent")
    assert r.status == FAIL
    assert r.reason.endswith(
        "; bak1: fail (pgbackrest.newest_backup_hours is 50, expected le 26)")
    # backup_recent is a major-risk trigger: the database's unit is 不符合 as bak1's is
    assert unit(db1, "L3-CES1-29").verdict == NONCONFORM


def test_an_unreadable_backup_host_leaves_the_database_not_evaluated() -> None:
    unreadable = bak_host(newest_backup_hours={"error": "pgbackrest info timed out"})
    db1, _ = follow_evidence([evaluate_target("db1", "host", CHECKS, db_host()),
                              evaluate_target("bak1", "host", CHECKS, unreadable)])
    r = result(db1, "backup_recent")
    assert r.status == ERROR and r.not_evaluated
    assert r.reason.endswith("; bak1: error (pgbackrest: pgbackrest info timed out)")
    assert unit(db1, "L3-CES1-29").verdict != CONFORM


def test_a_backup_host_outside_the_scan_leaves_the_database_not_evaluated() -> None:
    (db1,) = follow_evidence([evaluate_target("db1", "host", CHECKS, db_host())])
    r = result(db1, "backup_recent")
    assert (r.status, r.kind) == (NA, EVIDENCE_ELSEWHERE_KIND) and r.not_evaluated
    assert r.reason.endswith("; not in this scan: bak1")


def test_the_backup_hosts_exception_is_followed_as_an_exception() -> None:
    bak1 = evaluate_target("bak1", "host", CHECKS, bak_host(newest_backup_hours=50))
    bak1 = replace(bak1, results=[replace(r, status=EXCEPTION) if r.id == "backup_recent"
                                  else r for r in bak1.results])
    db1, _ = follow_evidence([evaluate_target("db1", "host", CHECKS, db_host()), bak1])
    assert result(db1, "backup_recent").status == EXCEPTION
    assert unit(db1, "L3-CES1-29").verdict == MANUAL
