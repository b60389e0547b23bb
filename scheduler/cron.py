"""Cron expressions (five fields, Vixie semantics) and the next time one fires.

Fields: minute hour day-of-month month day-of-week. Each is `*`, a number, a name (months
`jan`-`dec`, days `sun`-`sat`), a range `a-b`, a step `*/n` or `a-b/n` or `a/n` (from a to the
field's end), or a comma-separated list of those. Day-of-week 0 and 7 are both Sunday.
Macros: @yearly @annually @monthly @weekly @daily @midnight @hourly (not @reboot).

Vixie's day rule: when both day-of-month and day-of-week are restricted (neither field starts
with `*`), a day matches if EITHER matches; when one of them starts with `*` only the other
counts. So `0 0 1,15 * mon` fires on the 1st, the 15th and every Monday, and `0 0 */2 * mon`
fires on odd days that are Mondays (the `*` prefix makes day-of-month "unrestricted" to the
OR rule, exactly as Vixie cron and cronie do).

Times are local wall-clock times in the job's zone. Across daylight-saving changes:
a local time that does not exist (the hour skipped in spring) is skipped; a local time that
happens twice (the hour repeated in autumn) fires once, at its first occurrence. Asia/Shanghai
has neither, but the code is right for zones that do.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

MONTHS = {name: i for i, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    start=1)}
DAYS = {name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# (name, lowest, highest, names)
FIELDS = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day-of-month", 1, 31, {}),
    ("month", 1, 12, MONTHS),
    ("day-of-week", 0, 7, DAYS),
)
# How far ahead next_fire looks before deciding an expression never fires (Feb 29 that must
# also be a given weekday can be 28 years away).
HORIZON_YEARS = 30


class CronError(ValueError):
    """An expression that is not valid cron; the message says which field and why."""


@dataclass(frozen=True)
class Cron:
    expression: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday .. 6 = Saturday
    days_restricted: bool
    weekdays_restricted: bool

    def day_matches(self, year: int, month: int, day: int) -> bool:
        weekday = (calendar.weekday(year, month, day) + 1) % 7  # Monday=0 -> Sunday=0
        in_days = day in self.days
        in_weekdays = weekday in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays
        return in_days and in_weekdays


def _value(text: str, field: str, low: int, high: int, names: dict[str, int]) -> int:
    lowered = text.lower()
    if lowered in names:
        return names[lowered]
    if not text.isdigit():
        raise CronError(f"{field}: {text!r} is not a number" +
                        (f" or a name ({', '.join(names)})" if names else ""))
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"{field}: {value} is outside {low}-{high}")
    return value


def _field(text: str, field: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"{field}: empty list item in {text!r}")
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{field}: step {step_text!r} must be a positive number")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            start, end = _value(a, field, low, high, names), _value(b, field, low, high, names)
            if start > end:
                raise CronError(f"{field}: range {base!r} runs backwards")
        else:
            start = _value(base, field, low, high, names)
            end = high if slash else start
        values.update(range(start, end + 1, step))
    return values


@lru_cache(maxsize=4096)
def parse(expression: str) -> Cron:
    """Parse a cron expression; raise CronError naming the field at fault."""
    text = " ".join(expression.split())
    if text.startswith("@"):
        if text.lower() not in MACROS:
            raise CronError(f"unknown macro {text!r} (known: {', '.join(MACROS)})")
        text = MACROS[text.lower()]
    parts = text.split(" ")
    if len(parts) != 5:
        raise CronError(f"expected 5 fields (minute hour day-of-month month day-of-week), "
                        f"got {len(parts)} in {expression!r}")
    sets = [_field(p, *spec) for p, spec in zip(parts, FIELDS, strict=True)]
    weekdays = {d % 7 for d in sets[4]}
    cron = Cron(expression, tuple(sorted(sets[0])), tuple(sorted(sets[1])), frozenset(sets[2]),
                frozenset(sets[3]), frozenset(weekdays),
                days_restricted=not parts[2].startswith("*"),
                weekdays_restricted=not parts[4].startswith("*"))
    if not cron.weekdays_restricted or not cron.days_restricted:
        # Only day-of-month can make an expression impossible (30 Feb, 31 Apr).
        longest = max((calendar.monthrange(2000, m)[1] for m in cron.months), default=0)
        if cron.days_restricted and min(cron.days) > longest:
            raise CronError(f"day-of-month {parts[2]!r} never occurs in month {parts[3]!r}: "
                            "the expression never fires")
    return cron


def _resolve(naive: datetime, tz: ZoneInfo) -> datetime | None:
    """The instant a local wall time names: None if it does not exist, the first if twice."""
    local = naive.replace(tzinfo=tz, fold=0)
    back = local.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
    return local if back == naive else None


def next_fire(expr: str | Cron, after: datetime, tz: ZoneInfo) -> datetime:
    """The first time strictly after `after` (aware) that `expr` fires, aware in `tz`."""
    if after.tzinfo is None:
        raise ValueError("next_fire needs an aware datetime")
    cron = parse(expr) if isinstance(expr, str) else expr
    start = after.astimezone(tz).replace(tzinfo=None, second=0, microsecond=0)
    t = start + timedelta(minutes=1)
    limit = t.year + HORIZON_YEARS
    while t.year <= limit:
        if t.month not in cron.months:
            t = (datetime(t.year + 1, 1, 1) if t.month == 12
                 else datetime(t.year, t.month + 1, 1))
            continue
        if not cron.day_matches(t.year, t.month, t.day):
            t = datetime(t.year, t.month, t.day) + timedelta(days=1)
            continue
        hour = next((h for h in cron.hours if h >= t.hour), None)
        if hour is None:
            t = datetime(t.year, t.month, t.day) + timedelta(days=1)
            continue
        if hour != t.hour:
            t = datetime(t.year, t.month, t.day, hour)
        minute = next((m for m in cron.minutes if m >= t.minute), None)
        if minute is None:
            t = datetime(t.year, t.month, t.day, t.hour) + timedelta(hours=1)
            continue
        t = t.replace(minute=minute)
        fire = _resolve(t, tz)
        if fire is not None and fire > after:
            return fire
        t += timedelta(minutes=1)
    raise CronError(f"{cron.expression!r} does not fire within {HORIZON_YEARS} years "
                    f"after {after.isoformat()}")
