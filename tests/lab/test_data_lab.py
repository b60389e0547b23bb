"""The platform's data on the session's reference lab: the components' own database roles,
the desensitised extract (classified → operational → query) and the lookups and uploads the
public reaches through lb1.

The extract runs on the primary exactly as its job's action does (`python3 -m
scheduler.actions.extract_desensitised` as postgres); the module is handed to python3 on
stdin, so this does not depend on the scheduler agent's role being on the host.
"""

from __future__ import annotations

import time

from labdata import extract, on, public_request, sql, summary

from opsctl.secrets import secrets_dir

ID_18 = "^[0-9]{17}[0-9X]$"


def as_role(site, host: str, role: str, secret: str, database: str, statement: str,
            db: str = "db1") -> tuple[int, str]:
    """psql from `host` to `db` as a component's login role, TLS verified."""
    password = (secrets_dir(site.name) / secret).read_text().split()[0]
    return on(site, host, "env", f"PGPASSWORD={password}", "psql", "-X", "-A", "-t", "-q",
              "-v", "ON_ERROR_STOP=1",
              f"host={site.hosts[db].address} dbname={database} user={role} "
              "sslmode=verify-full sslrootcert=/etc/opsctl/pki/ca.crt connect_timeout=5",
              "-c", statement)


def test_the_data_model_exists_and_classified_holds_the_lab_contracts(reference):
    site, _ = reference
    assert int(sql(site, "db1", "classified",
                   "SELECT count(*) FROM contracts WHERE contract_id LIKE 'LAB-%'")) >= 5
    assert sql(site, "db1", "classified", "SELECT count(*) FROM contracts "
               "WHERE ST_SRID(parcel) = 4490 AND ST_Area(parcel) > 0") != "0"
    for database, tables in (("operational", "contracts,uploads"), ("query", "contracts")):
        found = sql(site, "db1", database, "SELECT string_agg(tablename, ',' ORDER BY tablename) "
                    "FROM pg_tables WHERE schemaname = 'public' AND tablename IN "
                    "('contracts', 'uploads')")
        assert found == tables, (database, found)


def test_the_extract_masks_names_and_id_numbers_and_a_second_run_changes_nothing(reference):
    site, _ = reference
    code, out = extract(site)
    assert code == 0, out
    first = summary(out)
    assert first["read"] >= 5
    code, out = extract(site)
    assert code == 0, out
    again = summary(out)
    assert again["operational"] == {"inserted": 0, "updated": 0, "deleted": 0}, again
    assert again["query"] == {"inserted": 0, "updated": 0, "deleted": 0}, again
    row = sql(site, "db1", "operational", "SELECT contractor, id_number FROM contracts "
              "WHERE contract_id = 'LAB-110101-0002'")
    assert row == "李*|110***********125X"
    assert sql(site, "db1", "operational",
               f"SELECT count(*) FROM contracts WHERE id_number ~ '{ID_18}'") == "0"
    total = sql(site, "db1", "classified", "SELECT count(*) FROM contracts")
    assert sql(site, "db1", "operational", "SELECT count(*) FROM contracts") == total
    assert sql(site, "db1", "query", "SELECT count(*) FROM contracts") == total


def test_a_change_in_classified_reaches_operational_and_query_masked(reference):
    site, _ = reference
    cid = "LAB-320102-0003"
    try:
        sql(site, "db1", "classified",
            f"UPDATE contracts SET contractor_name = '司马相如', updated_at = now() "
            f"WHERE contract_id = '{cid}'")
        code, out = extract(site)
        assert code == 0, out
        assert summary(out)["operational"]["updated"] == 1
        assert sql(site, "db1", "query",
                   f"SELECT contractor FROM contracts WHERE contract_id = '{cid}'") == "司马**"
    finally:
        sql(site, "db1", "classified", f"UPDATE contracts SET contractor_name = '欧阳娜娜' "
            f"WHERE contract_id = '{cid}'")
        assert extract(site)[0] == 0


def test_the_extract_refuses_to_run_on_the_standby(reference):
    site, _ = reference
    code, out = extract(site, "db2")
    assert code == 3 and "standby" in out, out


def test_query_service_answers_a_lookup_through_lb1_and_404_for_an_unknown_id(reference):
    site, _ = reference
    assert extract(site)[0] == 0
    deadline = time.monotonic() + 15  # the replica replays the refreshed copy
    while True:
        status, body = public_request(site, "GET", "/query/contracts/LAB-110101-0001")
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status == 200, body
    assert body == {"contract_id": "LAB-110101-0001", "contractor": "张**", "area_mu": 6.5,
                    "village_code": "110101001001"}
    status, body = public_request(site, "GET", "/query/contracts/NO-SUCH-CONTRACT")
    assert status == 404, body


def test_an_upload_through_lb1_lands_in_operational(reference):
    site, _ = reference
    batch = f"lab-{time.time_ns()}"
    status, body = public_request(site, "POST", "/gateway/uploads", {
        "province": "gansu", "batch": batch,
        "records": [{"contract_id": "GS-620102-0001", "contractor": "马*", "area_mu": 4.5}]})
    assert status == 201 and body["spooled"] is False, body
    assert sql(site, "db1", "operational", "SELECT province || ' ' || "
               f"(body->'records'->0->>'contract_id') FROM uploads WHERE batch = '{batch}'"
               ) == "gansu GS-620102-0001"


def test_each_component_role_reaches_its_own_tables_only(reference):
    site, _ = reference
    # query-service's role: reads query (on either host), writes nothing, nothing else.
    for db in ("db1", "db2"):
        code, out = as_role(site, "app1", "query_reader", "db_query_reader", "query",
                            "SELECT count(*) > 0 FROM contracts", db=db)
        assert code == 0 and out == "t", (db, out)
    code, out = as_role(site, "app1", "query_reader", "db_query_reader", "query",
                        "DELETE FROM contracts")
    assert code != 0 and "permission denied" in out, out
    code, out = as_role(site, "app1", "query_reader", "db_query_reader", "operational",
                        "SELECT 1")
    assert code != 0 and "pg_hba.conf" in out, out
    # access-gateway's role: its uploads, not the desensitised contracts.
    code, out = as_role(site, "app2", "access_gateway", "db_access_gateway", "operational",
                        "SELECT count(*) >= 0 FROM uploads")
    assert code == 0 and out == "t", out
    code, out = as_role(site, "app2", "access_gateway", "db_access_gateway", "operational",
                        "SELECT count(*) FROM contracts")
    assert code != 0 and "permission denied" in out, out
    # Nobody from an application server reaches classified.
    for role, secret in (("query_reader", "db_query_reader"),
                         ("access_gateway", "db_access_gateway")):
        code, out = as_role(site, "app1", role, secret, "classified", "SELECT 1")
        assert code != 0 and "pg_hba.conf rejects connection" in out, (role, out)
