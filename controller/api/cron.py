"""A small matcher for 5-field cron expressions, for recurring freezes.

Used by ``controller.api.policy`` (to validate ``schedule``) and
``controller.policy.freeze`` (to find the occurrences of a recurring freeze). Pure: it
works on naive *wall-clock* datetimes; the caller converts to and from the freeze's time
zone, so daylight-saving changes are handled in one place (``freeze.py``).

Fields: minute (0-59), hour (0-23), day of month (1-31), month (1-12 or jan-dec), day
of week (0-7 or sun-sat; 0 and 7 are Sunday). Each field is ``*``, a value, a range
``a-b``, a step ``*/n`` or ``a-b/n``, or a comma-separated list of those. The macros
``@yearly``, ``@annually``, ``@monthly``, ``@weekly``, ``@daily`` and ``@hourly`` are
accepted. As in Vixie cron, when both day of month and day of week are restricted a day
matches if *either* does.

>>> s = CronSchedule.parse("0 18 * * fri")
>>> s.next_after(datetime(2026, 12, 1, 12, 0))
datetime.datetime(2026, 12, 4, 18, 0)
>>> s.previous_at_or_before(datetime(2026, 12, 1, 12, 0))
datetime.datetime(2026, 11, 27, 18, 0)

Costs are bounded whatever the expression: a schedule is parsed once per expression
(``CronSchedule.parse`` remembers), its times of day are sorted once, and occurrences
are produced lazily, one day at a time, starting at the right minute of the first day
(a search), so ``* * * * *`` costs no more to ask about than ``0 18 * * fri``.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

# Far enough to find any occurrence of a valid yearly expression, including leap days.
MAX_SEARCH_DAYS = 366 * 8 + 2

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class CronError(ValueError):
    """An expression that cannot be read; the message names the field and the rule."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    names_start: int = 0


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day of month", 1, 31),
    _Field("month", 1, 12, _MONTHS, 1),
    _Field("day of week", 0, 7, _WEEKDAYS, 0),
)


def _value(text: str, spec: _Field) -> int:
    lowered = text.lower()
    if spec.names and lowered in spec.names:
        return spec.names.index(lowered) + spec.names_start
    if not text.isdigit():
        allowed = f"{spec.low}-{spec.high}" + (
            f" or {spec.names[0]}-{spec.names[-1]}" if spec.names else ""
        )
        raise CronError(f"{spec.name}: {text!r} is not a number ({allowed})")
    value = int(text)
    if not spec.low <= value <= spec.high:
        raise CronError(f"{spec.name}: {value} is out of range {spec.low}-{spec.high}")
    return value


def _parse_field(text: str, spec: _Field) -> tuple[frozenset[int], bool]:
    """The values ``text`` selects, and whether it was the unrestricted ``*``."""
    if not text:
        raise CronError(f"{spec.name}: empty field")
    values: set[int] = set()
    for part in text.split(","):
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{spec.name}: step {step_text!r} must be a positive number")
            step = int(step_text)
        if base == "*":
            low, high = spec.low, spec.high
        elif "-" in base:
            first, _, last = base.partition("-")
            low, high = _value(first, spec), _value(last, spec)
            if low > high:
                raise CronError(f"{spec.name}: range {base!r} runs backwards")
        else:
            low = _value(base, spec)
            high = spec.high if slash else low
        values.update(range(low, high + 1, step))
    return frozenset(values), text == "*"


@dataclass(frozen=True)
class CronSchedule:
    """A parsed expression: the allowed values of each field."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    """0 = Monday ... 6 = Sunday (Python's ``date.weekday()``)."""
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        """The schedule of ``expression``; CronError naming the field otherwise."""
        return _parse(expression)

    @classmethod
    def _parse_uncached(cls, expression: str) -> CronSchedule:
        text = " ".join(expression.split())
        fields = _MACROS.get(text.lower(), text).split(" ")
        if len(fields) != 5:
            raise CronError(
                f"cron expression {expression!r} has {len(fields)} field(s); expected 5 "
                "(minute hour day-of-month month day-of-week), e.g. '0 18 * * fri'"
            )
        parsed = [_parse_field(part, spec) for part, spec in zip(fields, _FIELDS, strict=True)]
        (minutes, _), (hours, _), (days, any_day), (months, _), (cron_weekdays, any_weekday) = (
            parsed
        )
        # cron counts Sunday as 0 (and 7); Python's weekday() counts Monday as 0.
        weekdays = frozenset((d - 1) % 7 for d in cron_weekdays)
        schedule = cls(text, minutes, hours, days, months, weekdays, any_day, any_weekday)
        if schedule.next_after(datetime(2000, 1, 1)) is None:
            raise CronError(f"cron expression {expression!r} never matches a real date")
        return schedule

    def matches_day(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        in_month = day.day in self.days
        in_week = day.weekday() in self.weekdays
        if self.any_day or self.any_weekday:
            return in_month and in_week
        return in_month or in_week

    def matches(self, moment: datetime) -> bool:
        return (
            self.matches_day(moment.date())
            and moment.hour in self.hours
            and moment.minute in self.minutes
        )

    @functools.cached_property
    def times(self) -> tuple[time, ...]:
        """The matching times of day, earliest first (up to 1440)."""
        return tuple(sorted(time(h, m) for h in self.hours for m in self.minutes))

    def occurrences_before(self, moment: datetime) -> Iterator[datetime]:
        """Matching wall times at or before ``moment`` (to the minute), newest first."""
        times = self.times
        limit = moment.replace(second=0, microsecond=0)
        day = limit.date()
        # On the first day only the times up to the limit count: found by a search.
        last = bisect.bisect_right(times, limit.time())
        for _ in range(MAX_SEARCH_DAYS):
            if self.matches_day(day):
                for index in range(last - 1, -1, -1):
                    yield datetime.combine(day, times[index])
            day -= timedelta(days=1)
            last = len(times)

    def occurrences_after(self, moment: datetime) -> Iterator[datetime]:
        """Matching wall times strictly after ``moment``, oldest first."""
        times = self.times
        day = moment.date()
        first = bisect.bisect_right(times, moment.time().replace(tzinfo=None))
        for _ in range(MAX_SEARCH_DAYS):
            if self.matches_day(day):
                for index in range(first, len(times)):
                    yield datetime.combine(day, times[index])
            day += timedelta(days=1)
            first = 0

    def previous_at_or_before(self, moment: datetime) -> datetime | None:
        return next(self.occurrences_before(moment), None)

    def next_after(self, moment: datetime) -> datetime | None:
        return next(self.occurrences_after(moment), None)


@functools.lru_cache(maxsize=1024)
def _parse(expression: str) -> CronSchedule:
    # Schedules are immutable, so one parse per expression serves every policy and pass.
    return CronSchedule._parse_uncached(expression)
