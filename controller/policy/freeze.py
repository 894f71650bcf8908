"""Freezes: which are in force at a moment, and when the last of them ends.

Called by ``controller.policy.evaluate``. An absolute freeze runs from ``start`` to
``end`` (end exclusive). A recurring freeze starts at each match of its cron
``schedule`` in its ``timeZone`` and ends ``duration`` later, both on the wall clock: "Friday
18:00 for 62h" runs to Monday 08:00 local on daylight-saving weekends too. A start in
the hour skipped in spring is read as the first instant after it. Matching is done on wall
times and every candidate is turned into an instant before it is compared with ``now``,
so the repeated hour of an autumn change is judged by the real clock.

>>> from controller.api.policy import Freeze
>>> weekend = Freeze(name="weekend", schedule="0 18 * * fri", duration="62h",
...                  time_zone="Europe/Berlin")
>>> period = in_force(weekend, datetime(2026, 12, 5, 12, 0, tzinfo=UTC))
>>> period.start.isoformat(), period.end.isoformat()
('2026-12-04T18:00:00+01:00', '2026-12-07T08:00:00+01:00')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from controller.api.policy import Exemption, Freeze, parse_instant, zone
from controller.limits import FREEZE_CHAIN, FREEZE_HORIZON

# Matches of a schedule later than now on the wall clock but earlier in real time (the
# repeated hour in autumn) are found by starting the backwards search this far ahead.
_FOLD_MARGIN = timedelta(hours=3)


@dataclass(frozen=True)
class FreezePeriod:
    """One occurrence of a freeze; ``start``/``end`` are aware, in its time zone."""

    freeze: Freeze
    policy: str
    start: datetime
    end: datetime
    exemptions: tuple[Exemption, ...] = ()

    at_least: bool = False
    """The chain of freezes was followed as far as ``freezeChain``/``freezeHorizon``
    allow: the rollout is frozen until ``end`` *at least*."""

    def describe(self) -> str:
        what = f"freeze {self.freeze.name!r}"
        if self.freeze.reason:
            what += f" ({self.freeze.reason})"
        return what


def in_force(freeze: Freeze, now: datetime) -> FreezePeriod | None:
    """The occurrence of ``freeze`` that covers ``now``, if any."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    tz = zone(freeze.time_zone)
    # Compared in UTC: aware datetimes sharing a tzinfo compare by wall time.
    now = now.astimezone(UTC)
    if freeze.start is not None and freeze.end is not None:
        start = parse_instant(freeze.start, tz).astimezone(tz)
        end = parse_instant(freeze.end, tz).astimezone(tz)
        if start.astimezone(UTC) <= now < end.astimezone(UTC):
            return FreezePeriod(freeze=freeze, policy="", start=start, end=end)
        return None
    length = timedelta(seconds=freeze.duration or 0)
    wall_now = now.astimezone(tz).replace(tzinfo=None)
    # Wall times after now can only be earlier in real time in an autumn change's
    # repeated hour; without a change in the next hours, start the search at now.
    margin = _FOLD_MARGIN if _offset_changes(now, tz) else timedelta(0)
    for wall in freeze.cron().occurrences_before(wall_now + margin):
        start = wall.replace(tzinfo=tz).astimezone(UTC).astimezone(tz)
        if start.astimezone(UTC) > now:
            continue
        # The newest start at or before now ends last: the duration is the same for all.
        end = _end(wall, start, length, tz)
        if now < end.astimezone(UTC):
            return FreezePeriod(freeze=freeze, policy="", start=start, end=end)
        return None
    return None


def _offset_changes(now: datetime, tz: ZoneInfo) -> bool:
    """Whether ``tz``'s UTC offset changes within ``_FOLD_MARGIN`` either side of ``now``."""
    offsets = {(now + delta).astimezone(tz).utcoffset() for delta in (-_FOLD_MARGIN, _FOLD_MARGIN)}
    return len(offsets | {now.astimezone(tz).utcoffset()}) > 1


def _end(wall: datetime, start: datetime, length: timedelta, tz: ZoneInfo) -> datetime:
    """The wall time ``length`` after the wall start, so "Fri 18:00 + 62h" ends Monday
    08:00 local on daylight-saving weekends too. Should a skipped hour make that no
    later than the start, the duration is counted in real time instead."""
    end = (wall + length).replace(tzinfo=tz).astimezone(UTC)
    if end > start.astimezone(UTC):
        return end.astimezone(tz)
    return (start.astimezone(UTC) + length).astimezone(tz)


def next_start(freeze: Freeze, after: datetime) -> datetime | None:
    """When ``freeze`` next begins after ``after`` (for messages and planning)."""
    tz = zone(freeze.time_zone)
    after = after.astimezone(UTC)
    if freeze.start is not None:
        start = parse_instant(freeze.start, tz).astimezone(tz)
        return start if start.astimezone(UTC) > after else None
    wall_after = after.astimezone(tz).replace(tzinfo=None) - _FOLD_MARGIN
    for wall in freeze.cron().occurrences_after(wall_after):
        start = wall.replace(tzinfo=tz).astimezone(UTC).astimezone(tz)
        if start.astimezone(UTC) > after:
            return start
    return None


def periods_in_force(
    freezes: Sequence[tuple[str, Freeze, tuple[Exemption, ...]]], now: datetime
) -> list[FreezePeriod]:
    """Every freeze in force at ``now``; entries are (policy name, freeze, exemptions)."""
    found: list[FreezePeriod] = []
    for policy, freeze, exemptions in freezes:
        period = in_force(freeze, now)
        if period is not None:
            found.append(
                FreezePeriod(
                    freeze=freeze,
                    policy=policy,
                    start=period.start,
                    end=period.end,
                    exemptions=exemptions,
                )
            )
    return sorted(found, key=lambda p: (p.end.astimezone(UTC), p.policy, p.freeze.name))


def frozen_until(
    freezes: Sequence[tuple[str, Freeze, tuple[Exemption, ...]]], now: datetime
) -> FreezePeriod | None:
    """The period whose end is the first moment no freeze is in force, or None.

    Freezes that overlap or follow each other without a gap are chained: a freeze until
    Friday followed by a weekend freeze keeps the rollout waiting until Monday. The chain
    is followed at most ``freezeChain`` links and ``freezeHorizon`` ahead; a period found
    at that bound has ``at_least`` set (the caller looks again long before it ends).
    """
    last: FreezePeriod | None = None
    moment = now
    horizon = now.astimezone(UTC) + timedelta(seconds=FREEZE_HORIZON.value)
    for _ in range(FREEZE_CHAIN.int):
        periods = periods_in_force(freezes, moment)
        if not periods:
            return last
        last = periods[-1]
        moment = last.end
        if moment.astimezone(UTC) >= horizon:
            break
    return replace(last, at_least=True) if last is not None else None
