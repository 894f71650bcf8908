"""Grouped preset queries shared between runs (controller.analysis.batch), with a recording
``send`` in place of Prometheus; the same against the real Prometheus is in
test_prometheus_real.py."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from controller.analysis.batch import Batches, BatchKey
from controller.analysis.presets import GroupedQuery
from controller.analysis.values import QueryFailure, QueryOutcome, QueryResult, Sample
from controller.api.analysis import ErrorRatePreset
from tests.waiting import wait_until

T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEY = BatchKey(GroupedQuery(ErrorRatePreset(window=10)), None, 10.0)


def answer(*series: tuple[str, str, float]) -> QueryResult:
    return QueryResult(
        query="grouped",
        samples=tuple(
            Sample(labels={"namespace": ns, "revision": rev}, value=value)
            for ns, rev, value in series
        ),
        at=None,
    )


class Recorder:
    """A ``send`` that records the grouped queries and answers from a script."""

    def __init__(self, reply: QueryOutcome) -> None:
        self.reply = reply
        self.sent: list[str] = []

    def __call__(self, text: str) -> QueryOutcome:
        self.sent.append(text)
        return self.reply


def test_runs_due_at_the_same_moment_share_one_query_and_get_their_own_series() -> None:
    batches = Batches()
    for rev in ("a", "b", "c"):
        batches.expect(KEY, ("shop", rev), due=T0)
    send = Recorder(answer(("shop", "a", 0.01), ("shop", "b", 0.3), ("other", "c", 0.9)))
    mine = {
        rev: batches.measure(KEY, ("shop", rev), now=T0 + timedelta(seconds=0.1 * i), send=send)
        for i, rev in enumerate(("a", "b", "c"))
    }
    assert len(send.sent) == 1 and batches.queries == 1
    assert 'revision=~"a|b|c"' in send.sent[0]
    assert mine["a"] == QueryResult(query="grouped", samples=(Sample({}, 0.01),), at=None)
    assert mine["b"] == QueryResult(query="grouped", samples=(Sample({}, 0.3),), at=None)
    # ("other", "c") is not ("shop", "c"): no data, never another namespace's value.
    assert mine["c"] == QueryResult(query="grouped", samples=(), at=None)
    assert batches.pending(KEY) == 0


def test_an_answer_serves_for_one_tick_then_a_new_query_is_sent() -> None:
    batches = Batches(tick=0.5)
    send = Recorder(answer(("shop", "a", 0.0)))
    batches.measure(KEY, ("shop", "a"), now=T0, send=send)
    batches.measure(KEY, ("shop", "a"), now=T0 + timedelta(seconds=0.4), send=send)
    assert len(send.sent) == 1
    batches.measure(KEY, ("shop", "a"), now=T0 + timedelta(seconds=0.6), send=send)
    assert len(send.sent) == 2


def test_a_covered_run_whose_worker_comes_late_reads_the_answer_once() -> None:
    # A busy controller's queue delays the pass of a run the batch covered: it reads the
    # answer taken for its due moment instead of asking alone, but only once.
    batches = Batches(tick=0.5, max_age=2.0)
    for rev in ("a", "b"):
        batches.expect(KEY, ("shop", rev), due=T0 + timedelta(seconds=0.3))
    send = Recorder(answer(("shop", "a", 0.1), ("shop", "b", 0.2)))
    batches.measure(KEY, ("shop", "a"), now=T0, send=send)
    late = batches.measure(KEY, ("shop", "b"), now=T0 + timedelta(seconds=1.5), send=send)
    assert len(send.sent) == 1
    assert isinstance(late, QueryResult) and [s.value for s in late.samples] == [0.2]
    # Read once: b's next measurement, still within max_age, asks anew.
    batches.measure(KEY, ("shop", "b"), now=T0 + timedelta(seconds=1.8), send=send)
    assert len(send.sent) == 2


def test_a_covered_run_later_than_max_age_asks_again() -> None:
    batches = Batches(tick=0.5, max_age=2.0)
    for rev in ("a", "b"):
        batches.expect(KEY, ("shop", rev), due=T0)
    send = Recorder(answer(("shop", "a", 0.1), ("shop", "b", 0.2)))
    batches.measure(KEY, ("shop", "a"), now=T0, send=send)
    batches.measure(KEY, ("shop", "b"), now=T0 + timedelta(seconds=2.5), send=send)
    assert len(send.sent) == 2


def test_a_revision_not_covered_asks_again_with_everyone_then_due() -> None:
    batches = Batches()
    batches.expect(KEY, ("shop", "a"), due=T0)
    send = Recorder(answer(("shop", "a", 0.0), ("shop", "late", 0.2)))
    batches.measure(KEY, ("shop", "a"), now=T0, send=send)
    batches.expect(KEY, ("shop", "b"), due=T0 + timedelta(seconds=0.2))
    late = batches.measure(KEY, ("shop", "late"), now=T0 + timedelta(seconds=0.1), send=send)
    assert len(send.sent) == 2
    assert 'revision=~"b|late"' in send.sent[1]
    assert isinstance(late, QueryResult) and [s.value for s in late.samples] == [0.2]


def test_only_revisions_due_within_a_tick_join() -> None:
    batches = Batches(tick=0.5)
    batches.expect(KEY, ("shop", "now"), due=T0)
    batches.expect(KEY, ("shop", "later"), due=T0 + timedelta(seconds=2))
    send = Recorder(answer())
    batches.measure(KEY, ("shop", "now"), now=T0, send=send)
    assert 'revision=~"now"' in send.sent[0]
    assert batches.pending(KEY) == 1


def test_a_failed_batch_is_each_covered_runs_failure() -> None:
    failure = QueryFailure(kind="unavailable", query="grouped", message="connection refused")
    batches = Batches()
    for rev in ("a", "b"):
        batches.expect(KEY, ("shop", rev), due=T0)
    send = Recorder(failure)
    assert batches.measure(KEY, ("shop", "a"), now=T0, send=send) == failure
    assert batches.measure(KEY, ("shop", "b"), now=T0, send=send) == failure
    assert len(send.sent) == 1


def test_a_send_that_raises_fails_only_its_caller() -> None:
    batches = Batches()

    def broken(text: str) -> QueryOutcome:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        batches.measure(KEY, ("shop", "a"), now=T0, send=broken)
    send = Recorder(answer(("shop", "a", 0.1)))
    outcome = batches.measure(KEY, ("shop", "a"), now=T0, send=send)
    assert isinstance(outcome, QueryResult) and [s.value for s in outcome.samples] == [0.1]


def test_workers_needing_a_query_in_flight_wait_for_it_instead_of_sending_their_own() -> None:
    batches = Batches()
    for rev in ("a", "b"):
        batches.expect(KEY, ("shop", rev), due=T0)
    release = threading.Event()
    sent: list[str] = []

    def slow(text: str) -> QueryOutcome:
        sent.append(text)
        assert release.wait(timeout=30)
        return answer(("shop", "a", 0.1), ("shop", "b", 0.2))

    outcomes: dict[str, QueryOutcome] = {}

    def measure(rev: str) -> None:
        outcomes[rev] = batches.measure(KEY, ("shop", rev), now=T0, send=slow)

    first = threading.Thread(target=measure, args=("a",))
    first.start()
    wait_until(lambda: sent or None, timeout=10, what="the first query sent")
    second = threading.Thread(target=measure, args=("b",))
    second.start()
    release.set()
    first.join(timeout=30)
    second.join(timeout=30)
    assert len(sent) == 1
    assert {rev: [s.value for s in o.samples] for rev, o in outcomes.items()} == {  # type: ignore[union-attr]
        "a": [0.1],
        "b": [0.2],
    }


def test_registrations_of_ended_runs_are_forgotten() -> None:
    batches = Batches()
    batches.expect(KEY, ("shop", "gone"), due=T0)
    later = T0 + timedelta(seconds=600)
    send = Recorder(answer())
    batches.measure(KEY, ("shop", "a"), now=later, send=send)
    assert "gone" not in send.sent[0]
    assert batches.pending(KEY) == 0


def test_covered_runs_whose_workers_come_later_than_max_age_ask_together() -> None:
    # A queue so busy that covered runs miss the answer's max_age: the first of them
    # asks again for all of them (they are carried into the next batch), not alone.
    batches = Batches(tick=0.5, max_age=2.0)
    for rev in ("a", "b", "c"):
        batches.expect(KEY, ("shop", rev), due=T0)
    send = Recorder(answer(("shop", "a", 0.1), ("shop", "b", 0.2), ("shop", "c", 0.3)))
    batches.measure(KEY, ("shop", "a"), now=T0, send=send)
    late = T0 + timedelta(seconds=3)
    batches.measure(KEY, ("shop", "b"), now=late, send=send)
    c = batches.measure(KEY, ("shop", "c"), now=late + timedelta(seconds=0.1), send=send)
    assert len(send.sent) == 2
    assert 'revision=~"b|c"' in send.sent[1]
    assert isinstance(c, QueryResult) and [s.value for s in c.samples] == [0.3]


def test_an_answer_serves_its_tick_of_the_shared_grid_only() -> None:
    # Ticks are cut on one grid (multiples of the tick since the epoch), not from the
    # moment an answer was taken: T0 + 0.4 and T0 + 0.6 are in different ticks.
    batches = Batches(tick=0.5)
    send = Recorder(answer(("shop", "a", 0.0), ("shop", "b", 0.0)))
    batches.measure(KEY, ("shop", "a"), now=T0 + timedelta(seconds=0.4), send=send)
    batches.measure(KEY, ("shop", "a"), now=T0 + timedelta(seconds=0.6), send=send)
    assert len(send.sent) == 2
    batches.measure(KEY, ("shop", "a"), now=T0 + timedelta(seconds=0.9), send=send)
    assert len(send.sent) == 2
