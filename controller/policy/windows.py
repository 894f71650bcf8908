"""Allowed deployment windows: is one open now, and if not, when does the next open?

Called by ``controller.policy.evaluate``. A window's ``start`` and ``end`` are wall-clock
times in its ``timeZone`` on each of its ``days``; an end at or before the start falls
on the next day (``Fri 22:00-04:00`` runs into Saturday morning). Wall times are turned
into instants per day, so a window keeps its local hours across daylight-saving changes
and a window spanning the change night is an hour shorter or longer in real time. A
local time skipped by the spring change (02:30 in Europe/Berlin on the last Sunday of
March) is read with the offset before the change, i.e. as the first instant after it.

>>> from controller.api.policy import Window
>>> w = Window(days=["Mon-Fri"], start="09:00", end="16:00", time_zone="Europe/Berlin")
>>> state = window_state([w], datetime(2026, 12, 5, 12, 0, tzinfo=UTC))  # a Saturday
>>> state.open, state.opens_at.isoformat()
(False, '2026-12-07T09:00:00+01:00')
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from controller.api.policy import Window, zone

# Enough days to find the next opening of any window with at least one day.
_LOOKAHEAD_DAYS = 9


@dataclass(frozen=True)
class Opening:
    """One occurrence of a window: aware instants in the window's time zone."""

    window: Window
    start: datetime
    end: datetime

    def contains(self, moment: datetime) -> bool:
        # In UTC: aware datetimes sharing a tzinfo compare (and subtract) by wall time.
        return self.start.astimezone(UTC) <= moment.astimezone(UTC) < self.end.astimezone(UTC)

    @property
    def length(self) -> timedelta:
        return self.end.astimezone(UTC) - self.start.astimezone(UTC)


@dataclass(frozen=True)
class WindowState:
    open: bool
    current: Opening | None = None
    """The opening in force (the one closing last, when several overlap)."""
    next: Opening | None = None
    """When closed: the next opening to come."""

    @property
    def opens_at(self) -> datetime | None:
        return self.next.start if self.next is not None else None


def _wall(day: datetime, minutes: int, window: Window) -> datetime:
    """Local wall time ``minutes`` after ``day``'s midnight, as an aware instant."""
    tz = zone(window.time_zone)
    naive = day.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    local = (naive + timedelta(minutes=minutes)).replace(tzinfo=tz)
    # Round-trip through UTC so that a skipped wall time becomes a real instant.
    return local.astimezone(UTC).astimezone(tz)


def openings(window: Window, around: datetime) -> Iterator[Opening]:
    """Openings whose start day is from the day before ``around`` (local) onwards."""
    tz = zone(window.time_zone)
    local_day = around.astimezone(tz) - timedelta(days=1)
    days = window.weekdays()
    start_minutes = window.start_time().hour * 60 + window.start_time().minute
    end_minutes = window.end_offset_minutes()
    for offset in range(_LOOKAHEAD_DAYS):
        day = local_day + timedelta(days=offset)
        if day.weekday() not in days:
            continue
        yield Opening(
            window=window,
            start=_wall(day, start_minutes, window),
            end=_wall(day, end_minutes, window),
        )


def window_state(windows: Sequence[Window], now: datetime) -> WindowState:
    """Open when ``now`` is inside any of ``windows`` (an empty list is always open)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not windows:
        return WindowState(open=True)
    now = now.astimezone(UTC)
    current: Opening | None = None
    upcoming: Opening | None = None
    for window in windows:
        for opening in openings(window, now):
            start, end = opening.start.astimezone(UTC), opening.end.astimezone(UTC)
            if opening.contains(now):
                if current is None or end > current.end.astimezone(UTC):
                    current = opening
            elif start > now and (upcoming is None or start < upcoming.start.astimezone(UTC)):
                upcoming = opening
    if current is not None:
        return WindowState(open=True, current=current)
    return WindowState(open=False, next=upcoming)


def describe(window: Window) -> str:
    """'Mon-Fri 09:00-16:00 Europe/Berlin'."""
    label = f"{window.name}: " if window.name else ""
    return f"{label}{','.join(window.days)} {window.start}-{window.end} {window.time_zone}"
