"""Times on the wire: RFC 3339 as Kubernetes writes ``Time`` and ``MicroTime``.

The one place that formats and parses the timestamps deployctl reads and writes: status
timers (``currentStepStartedAt``...), Events, Lease renewals, Job conditions, the CLI's
ages and durations, the sandbox's pod statuses. Standard library only, so the CLI, the
strategies and the sandbox import it at no cost.

- ``timestamp``: a ``metav1.Time``, whole seconds, UTC, ``Z`` (every status time);
- ``micro_timestamp``: a ``metav1.MicroTime``, always six fractional digits (Lease
  ``renewTime``, Event ``eventTime``): the apiserver rejects a MicroTime without them;
- ``parse_timestamp``: either of those, or another writer's offset and fraction, as an
  aware UTC datetime.

A naive datetime is taken to be UTC.

>>> from datetime import datetime
>>> timestamp(datetime(2026, 3, 1, 12, 0, 5, 250000))
'2026-03-01T12:00:05Z'
>>> micro_timestamp(datetime(2026, 3, 1, 12, 0, 5))
'2026-03-01T12:00:05.000000Z'
>>> parse_timestamp("2026-03-01T13:00:05+01:00")
datetime.datetime(2026, 3, 1, 12, 0, 5, tzinfo=datetime.timezone.utc)
"""

from __future__ import annotations

from datetime import UTC, datetime


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with whole seconds, as every status time is written."""
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_timestamp(moment: datetime) -> str:
    """A MicroTime as the apiserver accepts it: always 6 fractional digits, UTC, ``Z``.

    The client library drops the fraction when microseconds are 0, which the apiserver
    rejects with 400 for MicroTime fields (Lease renewTime, Event eventTime).
    """
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(value: str) -> datetime:
    """The inverse of both; also reads offsets and fractions other writers use.

    Raises ``ValueError`` for text that is not a time.
    """
    return _utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
