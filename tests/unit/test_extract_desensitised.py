"""The extract's masking: what leaves the classified database of a person's name and ID."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from scheduler.actions.extract_desensitised import (
    OPERATIONAL_COLUMNS,
    Contract,
    batched,
    desensitise,
    id_check_digit,
    main,
    mask_id_number,
    mask_name,
    sync_sql,
    valid_id_number,
)


@pytest.mark.parametrize(("name", "masked"), [
    ("张三丰", "张**"),
    ("李四", "李*"),
    ("欧阳娜娜", "欧阳**"),       # compound surname kept whole
    ("诸葛亮", "诸葛*"),
    ("欧阳", "欧*"),             # nothing would be left to mask: keep one character only
    ("王", "*"),                 # a single character is masked whole
    ("买买提·艾力", "买**·**"),  # the separator of a transliterated name stays
    ("  赵六 ", "赵*"),
    ("", ""),
])
def test_mask_name(name: str, masked: str) -> None:
    assert mask_name(name) == masked


def test_mask_name_keeps_length_and_hides_every_given_name_character() -> None:
    for name in ("张三丰", "欧阳娜娜", "司马相如"):
        masked = mask_name(name)
        assert len(masked) == len(name)
        assert not set(masked) & set(name[2:])


@pytest.mark.parametrize(("number", "masked"), [
    ("110101199003071234", "110***********1234"),
    ("11010119900307125X", "110***********125X"),
    ("11010119900307125x", "110***********125X"),   # lower-case check digit normalised
    ("110101900307123", "110********7123"),         # old 15-digit number
    ("12345", "*****"),                             # unrecognised: masked whole
    ("1101011990030712AB", "******************"),
])
def test_mask_id_number(number: str, masked: str) -> None:
    assert mask_id_number(number) == masked


def test_check_digit_including_x() -> None:
    assert id_check_digit("11010119900307125") == "X"
    assert id_check_digit("51010420000229003") == "8"
    assert valid_id_number("11010119900307125X")
    assert valid_id_number("11010119900307125x")
    assert not valid_id_number("110101199003071250")
    assert not valid_id_number("11010119900307125")
    with pytest.raises(ValueError, match="17 digits"):
        id_check_digit("1101011990030712X")


def test_desensitise_row_in_operational_column_order() -> None:
    row = Contract("LAB-1", "欧阳娜娜", "32010219851212009X", "320102002003", Decimal("12.75"),
                   "2026-01-01")
    out = desensitise(row)
    assert dict(zip(OPERATIONAL_COLUMNS, out, strict=True)) == {
        "contract_id": "LAB-1", "contractor": "欧阳**", "id_number": "320***********009X",
        "village_code": "320102002003", "area_mu": Decimal("12.75"),
        "source_updated_at": "2026-01-01"}


def test_sync_sql_updates_only_changed_rows_and_deletes_the_vanished() -> None:
    upsert, delete, staging = sync_sql("contracts", ("contract_id", "contractor", "area_mu"),
                                       "refreshed_at")
    assert "ON CONFLICT (contract_id) DO UPDATE" in upsert
    assert ("WHERE contracts.contractor IS DISTINCT FROM EXCLUDED.contractor OR "
            "contracts.area_mu IS DISTINCT FROM EXCLUDED.area_mu") in upsert
    assert "refreshed_at = now()" in upsert
    assert delete.startswith("DELETE FROM contracts t WHERE NOT EXISTS")
    assert "ON COMMIT DROP" in staging


def test_batched() -> None:
    assert [len(b) for b in batched(((i,) for i in range(7)), 3)] == [3, 3, 1]
    assert list(batched([], 3)) == []


def test_bad_role_is_refused_before_connecting(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--role", "x; DROP TABLE contracts"]) == 2
    assert "is not a role name" in capsys.readouterr().err


def _on_a_standby(monkeypatch: pytest.MonkeyPatch) -> None:
    import scheduler.actions.extract_desensitised as action

    def standby(args, database):
        raise action.NotPrimary(f"{args.host}:{args.port} is a standby")

    monkeypatch.setattr(action, "connect", standby)


def test_by_hand_a_standby_is_refused(monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    _on_a_standby(monkeypatch)
    assert main([]) == 3
    assert "is a standby" in capsys.readouterr().err


def test_the_scheduled_job_skips_a_standby_and_succeeds(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    _on_a_standby(monkeypatch)
    assert main(["--on-standby", "skip"]) == 0
    assert "is a standby" in json.loads(capsys.readouterr().out)["skipped"]
