"""The cron matcher: fields, ranges, steps, names, day-of-month/day-of-week rules."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from controller.api.cron import CronError, CronSchedule


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 18 * * fri", datetime(2026, 12, 1, 12, 0), datetime(2026, 12, 4, 18, 0)),
        ("0 18 * * 5", datetime(2026, 12, 4, 18, 0), datetime(2026, 12, 11, 18, 0)),
        ("*/15 * * * *", datetime(2026, 1, 1, 10, 7), datetime(2026, 1, 1, 10, 15)),
        ("30 9-17/4 * * *", datetime(2026, 1, 1, 10, 0), datetime(2026, 1, 1, 13, 30)),
        ("0 0 1 jan,jul *", datetime(2026, 2, 1), datetime(2026, 7, 1)),
        ("0 0 29 2 *", datetime(2026, 3, 1), datetime(2028, 2, 29)),
        # Sunday is 0 and 7.
        ("0 12 * * 7", datetime(2026, 3, 23), datetime(2026, 3, 29, 12, 0)),
        ("0 12 * * sun", datetime(2026, 3, 23), datetime(2026, 3, 29, 12, 0)),
        # Both day fields restricted: either matches (the 13th, or any Friday).
        ("0 0 13 * fri", datetime(2026, 3, 1), datetime(2026, 3, 6)),
        ("@daily", datetime(2026, 5, 5, 0, 0), datetime(2026, 5, 6)),
        # A range across the week end is written as a list.
        ("0 20 * * fri-sat,sun", datetime(2026, 3, 21, 21, 0), datetime(2026, 3, 22, 20, 0)),
    ],
)
def test_next_occurrence(expression: str, after: datetime, expected: datetime) -> None:
    assert CronSchedule.parse(expression).next_after(after) == expected


def test_previous_occurrence_includes_the_current_minute() -> None:
    schedule = CronSchedule.parse("0 18 * * fri")
    assert schedule.previous_at_or_before(datetime(2026, 12, 4, 18, 0, 30)) == datetime(
        2026, 12, 4, 18, 0
    )
    assert schedule.previous_at_or_before(datetime(2026, 12, 4, 17, 59)) == datetime(
        2026, 11, 27, 18, 0
    )


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 18 * *", "has 4 field(s); expected 5"),
        ("61 * * * *", "minute: 61 is out of range 0-59"),
        ("0 24 * * *", "hour: 24 is out of range 0-23"),
        ("0 0 0 * *", "day of month: 0 is out of range 1-31"),
        ("0 0 * 13 *", "month: 13 is out of range 1-12"),
        ("0 0 * * funday", "day of week: 'funday' is not a number"),
        ("*/0 * * * *", "step '0' must be a positive number"),
        ("0 0 10-5 * *", "range '10-5' runs backwards"),
        ("0 0 31 2 *", "never matches a real date"),
        ("0 0 ,1 * *", "day of month: '' is not a number"),
    ],
)
def test_bad_expressions_say_what_is_wrong(expression: str, message: str) -> None:
    with pytest.raises(CronError, match=re.escape(message)):
        CronSchedule.parse(expression)
