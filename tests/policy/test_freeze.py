"""Freezes: absolute start/end, recurring (cron) freezes, chaining, daylight saving."""

from __future__ import annotations

from datetime import datetime

import pytest

from controller.api.policy import Freeze
from controller.policy.freeze import frozen_until, in_force, next_start
from tests.policy.helpers import berlin, utc

XMAS = Freeze(
    name="xmas",
    reason="Christmas release",
    start="2026-12-20T00:00",
    end="2026-12-24T00:00",
    time_zone="Europe/Berlin",
)
WEEKEND = Freeze(name="weekend", schedule="0 18 * * fri", duration="62h", time_zone="Europe/Berlin")


@pytest.mark.parametrize(
    ("now", "until"),
    [
        (berlin(2026, 12, 19, 23, 59), None),
        (berlin(2026, 12, 20, 0, 0), "2026-12-24T00:00:00+01:00"),  # start is inclusive
        (utc(2026, 12, 23, 22, 59), "2026-12-24T00:00:00+01:00"),
        (berlin(2026, 12, 24, 0, 0), None),  # end is exclusive
    ],
)
def test_absolute_freeze_start_and_end(now: datetime, until: str | None) -> None:
    period = in_force(XMAS, now)
    assert (period.end.isoformat() if period else None) == until


def test_absolute_freeze_with_an_offset_is_that_instant() -> None:
    freeze = Freeze(name="f", start="2026-12-20T00:00:00Z", end="2026-12-21T00:00:00Z")
    assert in_force(freeze, berlin(2026, 12, 20, 0, 30)) is None  # 23:30 UTC the day before
    assert in_force(freeze, berlin(2026, 12, 20, 1, 0)) is not None


@pytest.mark.parametrize(
    ("now", "until"),
    [
        (berlin(2026, 12, 4, 17, 59), None),
        (berlin(2026, 12, 4, 18, 0), "2026-12-07T08:00:00+01:00"),
        (berlin(2026, 12, 6, 12, 0), "2026-12-07T08:00:00+01:00"),
        (berlin(2026, 12, 7, 7, 59), "2026-12-07T08:00:00+01:00"),
        (berlin(2026, 12, 7, 8, 0), None),
        (berlin(2026, 12, 9, 12, 0), None),
    ],
)
def test_recurring_weekend_freeze(now: datetime, until: str | None) -> None:
    period = in_force(WEEKEND, now)
    assert (period.end.isoformat() if period else None) == until


@pytest.mark.parametrize(
    ("now", "start", "end"),
    [
        # Spring: Fri 18:00 CET to Mon 08:00 CEST (61 real hours).
        (utc(2026, 3, 29, 12, 0), "2026-03-27T18:00:00+01:00", "2026-03-30T08:00:00+02:00"),
        # Autumn: Fri 18:00 CEST to Mon 08:00 CET (63 real hours).
        (utc(2026, 10, 25, 12, 0), "2026-10-23T18:00:00+02:00", "2026-10-26T08:00:00+01:00"),
    ],
)
def test_recurring_freeze_keeps_local_hours_over_daylight_saving(
    now: datetime, start: str, end: str
) -> None:
    period = in_force(WEEKEND, now)
    assert period is not None
    assert (period.start.isoformat(), period.end.isoformat()) == (start, end)
    assert in_force(WEEKEND, utc(2026, 3, 30, 6, 0)) is None  # Mon 08:00 CEST


def test_recurring_freeze_starting_in_the_skipped_hour() -> None:
    nightly = Freeze(name="n", schedule="30 2 * * sun", duration="1h", time_zone="Europe/Berlin")
    # 02:30 does not exist on 29 March 2026: read as 03:30 CEST; still one hour long.
    period = in_force(nightly, utc(2026, 3, 29, 1, 45))
    assert period is not None
    assert period.start.isoformat() == "2026-03-29T03:30:00+02:00"
    assert period.end.isoformat() == "2026-03-29T04:30:00+02:00"


def test_next_start() -> None:
    assert next_start(WEEKEND, berlin(2026, 12, 1, 0, 0)) == berlin(2026, 12, 4, 18, 0)
    assert next_start(XMAS, berlin(2026, 12, 1)) == berlin(2026, 12, 20)
    assert next_start(XMAS, berlin(2026, 12, 21)) is None


def test_frozen_until_follows_freezes_that_run_into_each_other() -> None:
    # A release freeze to Friday 18:00 runs straight into the weekend freeze.
    release = Freeze(
        name="release", start="2026-12-01T00:00", end="2026-12-04T18:00", time_zone="Europe/Berlin"
    )
    entries = [("shop/release", release, ()), ("ops/default", WEEKEND, ())]
    period = frozen_until(entries, berlin(2026, 12, 2, 12, 0))
    assert period is not None
    assert period.freeze.name == "weekend" and period.policy == "ops/default"
    assert period.end == berlin(2026, 12, 7, 8, 0)
    assert frozen_until(entries, berlin(2026, 12, 8, 12, 0)) is None


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        in_force(XMAS, datetime(2026, 12, 21))
