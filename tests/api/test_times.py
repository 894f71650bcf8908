"""Times on the wire: one format for status times, MicroTime with its six digits."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime, timedelta, timezone

import pytest

import controller.times
from controller.times import micro_timestamp, parse_timestamp, timestamp


def test_docstring_examples() -> None:
    result = doctest.testmod(controller.times)
    assert result.attempted > 0 and result.failed == 0


def test_times_are_utc_whole_seconds_and_read_back_exactly() -> None:
    berlin = timezone(timedelta(hours=1))
    moment = datetime(2026, 3, 1, 13, 0, 5, 999999, tzinfo=berlin)
    assert timestamp(moment) == "2026-03-01T12:00:05Z"
    assert parse_timestamp(timestamp(moment)) == datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)
    assert micro_timestamp(moment) == "2026-03-01T12:00:05.999999Z"
    assert parse_timestamp(micro_timestamp(moment)) == moment


def test_a_naive_moment_is_utc_and_junk_is_a_value_error() -> None:
    assert timestamp(datetime(2026, 3, 1, 12, 0)) == "2026-03-01T12:00:00Z"
    assert parse_timestamp("2026-03-01T12:00:00").tzinfo is UTC
    with pytest.raises(ValueError):
        parse_timestamp("yesterday")
