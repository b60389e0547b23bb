"""Cron expressions: fields, names, steps, macros, Vixie's day rule, month ends, DST."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from scheduler.cron import CronError, next_fire, parse

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")


def fires(expr: str, start: datetime, n: int, tz: ZoneInfo = SHANGHAI) -> list[str]:
    out, t = [], start
    for _ in range(n):
        t = next_fire(expr, t, tz)
        out.append(t.isoformat())
    return out


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def test_every_minute_is_strictly_after():
    assert next_fire("* * * * *", sh(2026, 1, 1, 0, 0), SHANGHAI) == sh(2026, 1, 1, 0, 1)
    assert next_fire("* * * * *", sh(2026, 1, 1, 0, 0, 30), SHANGHAI) == sh(2026, 1, 1, 0, 1)


def test_shanghai_local_time_from_utc_input():
    # 01:00 Shanghai is 17:00 UTC the day before; the answer keeps the job's zone.
    got = next_fire("0 1 * * *", datetime(2026, 6, 1, 12, 0, tzinfo=UTC), SHANGHAI)
    assert got.isoformat() == "2026-06-02T01:00:00+08:00"
    assert got.astimezone(UTC).isoformat() == "2026-06-01T17:00:00+00:00"


def test_lists_ranges_and_steps():
    assert fires("*/20 9-10 * * *", sh(2026, 1, 1, 9, 30), 4) == [
        "2026-01-01T09:40:00+08:00", "2026-01-01T10:00:00+08:00",
        "2026-01-01T10:20:00+08:00", "2026-01-01T10:40:00+08:00"]
    assert fires("5,10-12 0 * * *", sh(2026, 1, 1), 4) == [
        "2026-01-01T00:05:00+08:00", "2026-01-01T00:10:00+08:00",
        "2026-01-01T00:11:00+08:00", "2026-01-01T00:12:00+08:00"]
    assert parse("10-30/10 * * * *").minutes == (10, 20, 30)
    assert parse("50/5 * * * *").minutes == (50, 55)


def test_names_and_sunday_as_7():
    assert parse("0 0 * jan-mar mon-fri").months == frozenset({1, 2, 3})
    assert parse("0 0 * * MON-FRI").weekdays == frozenset({1, 2, 3, 4, 5})
    assert parse("0 0 * * 7").weekdays == parse("0 0 * * sun").weekdays == frozenset({0})


@pytest.mark.parametrize("macro, expr", [("@daily", "0 0 * * *"), ("@hourly", "0 * * * *"),
                                         ("@weekly", "0 0 * * 0"), ("@monthly", "0 0 1 * *"),
                                         ("@yearly", "0 0 1 1 *")])
def test_macros(macro, expr):
    start = sh(2026, 3, 15, 12, 34)
    assert next_fire(macro, start, SHANGHAI) == next_fire(expr, start, SHANGHAI)


def test_31st_skips_30_day_months():
    assert fires("0 0 31 * *", sh(2026, 3, 31, 12), 3) == [
        "2026-05-31T00:00:00+08:00", "2026-07-31T00:00:00+08:00",
        "2026-08-31T00:00:00+08:00"]


def test_feb_29_only_in_leap_years():
    assert fires("0 0 29 2 *", sh(2026, 1, 1), 2) == [
        "2028-02-29T00:00:00+08:00", "2032-02-29T00:00:00+08:00"]
    # 2100 is not a leap year.
    assert next_fire("0 0 29 2 *", sh(2096, 3, 1), SHANGHAI) == sh(2104, 2, 29)


def test_last_day_of_february_via_28_and_29():
    assert fires("0 0 28,29 2 *", sh(2027, 1, 1), 3) == [
        "2027-02-28T00:00:00+08:00", "2028-02-28T00:00:00+08:00",
        "2028-02-29T00:00:00+08:00"]


def test_day_of_month_or_day_of_week_when_both_restricted():
    # 1st and 15th of the month, OR any Monday (Vixie).
    got = fires("0 0 1,15 * mon", sh(2026, 11, 28), 5)
    assert got == ["2026-11-30T00:00:00+08:00",  # Monday
                   "2026-12-01T00:00:00+08:00",  # the 1st (a Tuesday)
                   "2026-12-07T00:00:00+08:00", "2026-12-14T00:00:00+08:00",
                   "2026-12-15T00:00:00+08:00"]


def test_star_day_field_means_and():
    # Only day-of-week restricted: every Monday, nothing else.
    assert fires("0 0 * * mon", sh(2026, 11, 28), 2) == [
        "2026-11-30T00:00:00+08:00", "2026-12-07T00:00:00+08:00"]
    # `*/2` starts with `*`: day-of-month counts as unrestricted for the OR rule, so both
    # must match: odd days that are Mondays.
    got = fires("0 0 */2 * mon", sh(2026, 11, 28), 3)
    assert all(datetime.fromisoformat(g).weekday() == 0 for g in got)
    assert all(datetime.fromisoformat(g).day % 2 == 1 for g in got)


@pytest.mark.parametrize("expr, fragment", [
    ("* * * *", "expected 5 fields"),
    ("60 * * * *", "minute: 60 is outside 0-59"),
    ("* 24 * * *", "hour: 24"),
    ("* * 0 * *", "day-of-month: 0"),
    ("* * * 13 *", "month: 13"),
    ("* * * * 8", "day-of-week: 8"),
    ("*/0 * * * *", "step"),
    ("5-1 * * * *", "runs backwards"),
    ("* * * foo *", "not a number or a name"),
    ("@reboot", "unknown macro"),
    ("0 0 30 2 *", "never fires"),
    ("0 0 31 4,6 *", "never fires"),
])
def test_bad_expressions_name_the_field(expr, fragment):
    with pytest.raises(CronError, match=fragment):
        parse(expr)


def test_feb_30_with_weekday_is_valid_by_the_or_rule():
    # Restricted weekday: fires on Mondays in February even though the 30th never comes.
    got = next_fire("0 0 30 2 mon", sh(2026, 1, 1), SHANGHAI)
    assert got == sh(2026, 2, 2)


def test_dst_spring_forward_skips_the_missing_time():
    # 2026-03-29 02:00 -> 03:00 in Berlin: 02:30 does not exist that day.
    start = datetime(2026, 3, 28, 12, tzinfo=BERLIN)
    assert fires("30 2 * * *", start, 2, BERLIN) == [
        "2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00"]
    # An hourly job: 01:00 (+01:00), then 03:00 (+02:00) one real hour later.
    hourly = fires("0 * * * *", datetime(2026, 3, 29, 0, 30, tzinfo=BERLIN), 2, BERLIN)
    assert hourly == ["2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00"]


def test_dst_fall_back_fires_once_for_the_repeated_time():
    # 2026-10-25 03:00 CEST -> 02:00 CET: 02:30 happens twice; it fires at the first.
    start = datetime(2026, 10, 24, 12, tzinfo=BERLIN)
    got = [datetime.fromisoformat(g) for g in fires("30 2 * * *", start, 2, BERLIN)]
    assert got[0].isoformat() == "2026-10-25T02:30:00+02:00"
    assert got[1].isoformat() == "2026-10-26T02:30:00+01:00"
    # Asked from inside the repeated hour's second pass, it does not fire again that day.
    second_pass = datetime(2026, 10, 25, 0, 40, tzinfo=UTC)  # 02:40 CET (fold=1)
    assert next_fire("30 2 * * *", second_pass, BERLIN).isoformat() == \
        "2026-10-26T02:30:00+01:00"


def test_results_are_increasing_across_a_dst_year():
    t = datetime(2026, 1, 1, tzinfo=BERLIN)
    previous = t
    for _ in range(2000):
        t = next_fire("17 */5 * * *", t, BERLIN)
        assert t > previous
        previous = t


def test_naive_datetime_refused():
    with pytest.raises(ValueError):
        next_fire("* * * * *", datetime(2026, 1, 1), SHANGHAI)
