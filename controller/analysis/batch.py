"""One Prometheus query for every revision measured at the same moment with the same
preset: queries grow with the number of distinct presets, not with the number of
Rollouts.

A preset's query (``errorRate``, ``latency``) differs between runs only by namespace and
revision, so ``controller.analysis.presets.grouped_query`` can ask it for all of them at
once, ``sum by (namespace, revision)``, one series per revision. ``Batches`` sends that
query for every (namespace, revision) that is due to be measured around now, and fans the
answer out: each run gets its own series (or none: no data) as if it had asked alone.

How revisions join a batch:

- time is cut into ticks (``tick``, 0.5 s) on one grid shared by every run (multiples of
  ``tick`` since the epoch): a batched metric's due moments, its interval and its
  first-data polls alike, are rounded up to the grid (``on_grid``; the engine does it),
  so runs that come due at scattered moments within a tick are due at the same moment,
  at the cost of at most one tick of latency;
- the reconciler's workers measure runs one pass at a time; each pass that computes when
  a run is next due also registers that (grid) moment here (``expect``), so the first
  worker to measure a preset in a tick asks for every revision due by the end of that
  tick, not just its own;
- every worker that needs the same preset in the same tick reads that answer instead of
  asking Prometheus; a revision the answer did not cover (registered too late) asks
  again, for itself and every other revision then due;
- a revision the answer covered reads it even when its worker comes to it later than a
  tick after it was taken (up to ``max_age``, 2 s): on a busy controller the queue
  delays passes, and a covered run that asked again alone because its worker was late
  made the queries grow with the Rollouts again (measured: one revision per grouped
  query at the median with 100 canaries at load 26). The answer was taken for that
  run's due moment (within a tick of it), which a late worker cannot improve on; a
  covered run that has not read an answer is carried into the next batch, so a run
  whose worker comes later still is asked with the rest, never alone;
- one query per preset is in flight at a time: a worker that needs one meanwhile waits
  for it (and usually finds itself covered) instead of sending its own.

A failed batch is each covered run's failure, never a pass: the failure value is fanned
out like a result, and no run is judged on another's data. When the failure is Prometheus
refusing or garbling the grouped query (permanent), the engine has each run ask its own
query instead, so a run's verdict is never worse than the one it would get alone. A
``send`` that raises fails only its caller; the runs waiting on it ask again. Clock-free:
``now`` comes from the caller.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from controller.analysis.presets import GroupedQuery
from controller.analysis.values import QueryFailure, QueryOutcome, QueryResult, Sample

# How long an answer serves other runs, and so how often one preset is asked at most.
DEFAULT_TICK = 0.5
# How long an answer serves a run it covered that has not read it yet (a late worker).
DEFAULT_MAX_AGE = 2.0
# A registration not renewed for this long belongs to a run that has ended.
FORGET_AFTER = 120.0

Scope = tuple[str, str]  # (namespace, revision)
Send = Callable[[str], QueryOutcome]


@dataclass(frozen=True)
class BatchKey:
    """What makes two measurements share a query: the grouped preset and where it goes."""

    grouped: GroupedQuery
    address: str | None
    timeout: float


@dataclass
class _Batch:
    due: dict[Scope, float] = field(default_factory=dict)  # scope -> due (unix seconds)
    answer: QueryOutcome | None = None
    covered: frozenset[Scope] = frozenset()
    # Covered by an answer and not read yet -> since when (unix seconds): carried into
    # the next batch until read, so a late worker's run is never asked alone.
    unread: dict[Scope, float] = field(default_factory=dict)
    tick: float = float("-inf")  # the grid moment (tick) the answer was taken in
    taken_at: float = float("-inf")
    in_flight: bool = False


class Batches:
    """Shared grouped queries, per ``BatchKey``; thread-safe."""

    def __init__(self, *, tick: float = DEFAULT_TICK, max_age: float = DEFAULT_MAX_AGE) -> None:
        self.tick = tick
        self.max_age = max(max_age, tick)
        self._cond = threading.Condition()
        self._batches: dict[BatchKey, _Batch] = {}
        self.queries = 0  # grouped queries sent (for tests and /metrics)

    def on_grid(self, moment: datetime) -> datetime:
        """``moment`` rounded up to the shared grid of ticks (itself when on it)."""
        at = moment.timestamp()
        # A hair of tolerance: a moment already on the grid stays there despite rounding.
        ticks = math.ceil(at / self.tick - 1e-6)
        return datetime.fromtimestamp(ticks * self.tick, UTC)

    def _tick_of(self, at: float) -> float:
        """The grid moment starting the tick that ``at`` (unix seconds) falls in."""
        return math.floor(at / self.tick + 1e-6) * self.tick

    def expect(self, key: BatchKey, scope: Scope, *, due: datetime) -> None:
        """``scope`` will be measured with ``key`` at ``due``: include it in the batch then."""
        with self._cond:
            self._batches.setdefault(key, _Batch()).due[scope] = due.timestamp()

    def measure(self, key: BatchKey, scope: Scope, *, now: datetime, send: Send) -> QueryOutcome:
        """``scope``'s own answer from the batch taken in ``now``'s tick (or, for a covered
        scope that has not read it yet, one at most ``max_age`` old), or from one sent now
        (through ``send``, given the grouped query) for it and every revision due by the
        end of ``now``'s tick."""
        at = now.timestamp()
        tick = self._tick_of(at)
        with self._cond:
            batch = self._batches.setdefault(key, _Batch())
            batch.due.setdefault(scope, at)
            while True:
                if batch.answer is not None and scope in batch.covered:
                    fresh = batch.tick == tick
                    if fresh or (scope in batch.unread and at - batch.taken_at < self.max_age):
                        batch.unread.pop(scope, None)
                        batch.due.pop(scope, None)
                        return _fan_out(key.grouped, batch.answer, scope)
                if not batch.in_flight:
                    break
                self._cond.wait()
            batch.in_flight = True
            for gone in [s for s, due in batch.due.items() if due < at - FORGET_AFTER]:
                del batch.due[gone]
            end = tick + self.tick * (1 - 1e-6)
            carried = {s for s, since in batch.unread.items() if since >= at - FORGET_AFTER}
            covered = frozenset(s for s, due in batch.due.items() if due < end)
            covered |= carried | {scope}
        answer: QueryOutcome | None = None
        try:
            namespaces = sorted({namespace for namespace, _ in covered})
            revisions = sorted({revision for _, revision in covered})
            answer = send(key.grouped.query(namespaces, revisions))
        finally:
            with self._cond:
                batch.in_flight = False
                if answer is not None:
                    self.queries += 1
                    batch.answer, batch.covered = answer, covered
                    batch.tick, batch.taken_at = tick, at
                    batch.unread = {s: batch.unread.get(s, at) for s in covered if s != scope}
                    for served in covered:
                        batch.due.pop(served, None)
                self._cond.notify_all()
        return _fan_out(key.grouped, answer, scope)

    def pending(self, key: BatchKey) -> int:
        """Revisions registered for ``key`` and not yet measured (for tests)."""
        with self._cond:
            batch = self._batches.get(key)
            return len(batch.due) if batch else 0


def _fan_out(grouped: GroupedQuery, answer: QueryOutcome, scope: Scope) -> QueryOutcome:
    """``scope``'s part of a grouped answer: its one series without the grouping labels
    (so evidence reads as for a query of its own), none for no data, or the failure."""
    if isinstance(answer, QueryFailure):
        return answer
    namespace, revision = scope
    mine = tuple(
        Sample(labels={}, value=sample.value)
        for sample in answer.samples
        if sample.labels.get(grouped.namespace_label) == namespace
        and sample.labels.get(grouped.revision_label) == revision
    )
    return QueryResult(query=answer.query, samples=mine, at=answer.at)
