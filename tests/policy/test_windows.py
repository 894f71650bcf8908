"""Deployment windows: weekdays, across midnight, and across daylight-saving changes.

Europe/Berlin in 2026: summer time starts Sunday 29 March (02:00 CET -> 03:00 CEST) and
ends Sunday 25 October (03:00 CEST -> 02:00 CET).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from controller.api.policy import Window
from controller.policy.windows import window_state
from tests.policy.helpers import berlin, utc

OFFICE = Window(days=["Mon-Fri"], start="09:00", end="16:00", time_zone="Europe/Berlin")
NIGHT = Window(days=["Sat"], start="22:00", end="04:00", time_zone="Europe/Berlin")


@pytest.mark.parametrize(
    ("now", "is_open", "opens_at"),
    [
        (berlin(2026, 12, 4, 9, 0), True, None),  # Friday, opening minute
        (berlin(2026, 12, 4, 15, 59), True, None),
        (berlin(2026, 12, 4, 16, 0), False, "2026-12-07T09:00:00+01:00"),  # end is exclusive
        (berlin(2026, 12, 5, 12, 0), False, "2026-12-07T09:00:00+01:00"),  # Saturday
        (berlin(2026, 12, 7, 8, 59), False, "2026-12-07T09:00:00+01:00"),  # Monday early
        (utc(2026, 12, 7, 8, 0), True, None),  # 09:00 Berlin given in UTC
    ],
)
def test_weekday_window(now: datetime, is_open: bool, opens_at: str | None) -> None:
    state = window_state([OFFICE], now)
    assert state.open is is_open
    assert (state.opens_at.isoformat() if state.opens_at else None) == opens_at


@pytest.mark.parametrize(
    ("now", "is_open"),
    [
        (berlin(2026, 12, 5, 21, 59), False),
        (berlin(2026, 12, 5, 22, 0), True),
        (berlin(2026, 12, 6, 0, 0), True),  # Sunday, but the Saturday window runs on
        (berlin(2026, 12, 6, 3, 59), True),
        (berlin(2026, 12, 6, 4, 0), False),
        (berlin(2026, 12, 6, 22, 30), False),  # Sunday evening: not a window day
        (berlin(2026, 12, 4, 23, 0), False),  # Friday night
    ],
)
def test_window_across_midnight_belongs_to_its_start_day(now: datetime, is_open: bool) -> None:
    assert window_state([NIGHT], now).open is is_open


def test_office_hours_stay_local_across_the_spring_change() -> None:
    # Friday before the change: 09:00 CET is 08:00 UTC; Monday after: 09:00 CEST = 07:00 UTC.
    assert window_state([OFFICE], utc(2026, 3, 27, 8, 0)).open
    assert not window_state([OFFICE], utc(2026, 3, 27, 7, 59)).open
    state = window_state([OFFICE], utc(2026, 3, 28, 12, 0))
    assert state.opens_at == utc(2026, 3, 30, 7, 0)
    assert state.opens_at is not None and state.opens_at.isoformat() == "2026-03-30T09:00:00+02:00"


def test_office_hours_stay_local_across_the_autumn_change() -> None:
    assert window_state([OFFICE], utc(2026, 10, 23, 7, 0)).open  # 09:00 CEST
    state = window_state([OFFICE], utc(2026, 10, 24, 12, 0))
    assert state.opens_at == utc(2026, 10, 26, 8, 0)  # 09:00 CET


def test_night_window_over_the_spring_change_is_an_hour_shorter() -> None:
    # Sat 28 March 22:00 CET (21:00 UTC) to Sun 29 March 04:00 CEST (02:00 UTC): 5 hours.
    state = window_state([NIGHT], utc(2026, 3, 28, 21, 0))
    assert state.open and state.current is not None
    assert state.current.length == timedelta(hours=5)
    assert window_state([NIGHT], utc(2026, 3, 29, 1, 59)).open
    assert not window_state([NIGHT], utc(2026, 3, 29, 2, 0)).open


def test_night_window_over_the_autumn_change_is_an_hour_longer() -> None:
    # Sat 24 October 22:00 CEST (20:00 UTC) to Sun 25 October 04:00 CET (03:00 UTC): 7 hours.
    state = window_state([NIGHT], utc(2026, 10, 25, 2, 59))
    assert state.open and state.current is not None
    assert state.current.length == timedelta(hours=7)
    assert not window_state([NIGHT], utc(2026, 10, 25, 3, 0)).open
    assert not window_state([NIGHT], utc(2026, 10, 24, 19, 59)).open


def test_a_start_in_the_skipped_hour_means_the_first_instant_after_it() -> None:
    early = Window(days=["Sun"], start="02:30", end="05:00", time_zone="Europe/Berlin")
    state = window_state([early], utc(2026, 3, 28, 12, 0))
    assert state.opens_at is not None
    assert state.opens_at.isoformat() == "2026-03-29T03:30:00+02:00"


def test_any_open_window_will_do_and_the_earliest_next_opening_is_given() -> None:
    both = [OFFICE, NIGHT]
    assert window_state(both, berlin(2026, 12, 5, 23, 0)).open
    state = window_state(both, berlin(2026, 12, 5, 12, 0))
    assert state.opens_at == berlin(2026, 12, 5, 22, 0)
    assert window_state([], berlin(2026, 12, 5, 12, 0)).open


def test_whole_days_and_naive_times() -> None:
    weekend = Window(days=["Sat-Sun"], start="00:00", end="24:00")
    assert window_state([weekend], utc(2026, 12, 6, 23, 59)).open
    assert not window_state([weekend], utc(2026, 12, 7, 0, 0)).open
    with pytest.raises(ValueError, match="timezone-aware"):
        window_state([weekend], datetime(2026, 12, 6))
