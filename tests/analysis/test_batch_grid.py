"""Batched metrics come due on one grid of ticks shared by every run, so runs started at
scattered moments are measured in the same grouped queries (controller.analysis.batch,
``AnalysisEngine.next_due``). Driven by the injectable clock with a recording double of
our own ``Measurer`` seam; the same against the real Prometheus is test_batch_real.py."""

from __future__ import annotations

import heapq
import re
from dataclasses import dataclass, field

import pytest

from controller.analysis.batch import Batches
from controller.analysis.run import AnalysisEngine, start_run
from controller.analysis.templating import QueryContext
from controller.analysis.values import QueryOutcome, QueryResult, Sample
from controller.api.rollout import AnalysisRef
from controller.api.status import AnalysisRunStatus
from tests.analysis.helpers import T0, at, template

NAMESPACE = "shop"
REF = AnalysisRef.model_validate({"templates": [{"name": "http-health"}]})
TEMPLATES = {
    "http-health": template(
        {
            "name": "errors",
            "interval": "2s",
            "count": 3,
            "inconclusiveLimit": 3,
            "errorRate": {"window": "10s"},
        }
    )
}


# Each revision's first series appears this long after its run started: until then the
# runs poll for first data, on the grid too.
FIRST_SERIES_AFTER = 2.3


@dataclass
class GroupedAnswers:
    """Our ``Measurer`` seam: answers a grouped query with one healthy series for every
    revision it names whose first series has appeared, and remembers the queries."""

    starts: dict[str, float]
    queries: list[tuple[float, int]] = field(default_factory=list)
    clock: list[float] = field(default_factory=lambda: [0.0])

    def measure(self, promql: str, *, address, timeout, budget) -> QueryOutcome:
        match = re.search(r'revision=~"([^"]*)"', promql)
        if match is None:  # the traffic query explaining a no-data record
            return QueryResult(query=promql)
        revisions = match.group(1).split("|")
        now = self.clock[0]
        self.queries.append((now, len(revisions)))
        samples = tuple(
            Sample({"namespace": NAMESPACE, "revision": rev}, 0.01)
            for rev in revisions
            if now >= self.starts[rev] + FIRST_SERIES_AFTER
        )
        return QueryResult(query=promql, samples=samples)


def context(rev: str) -> QueryContext:
    return QueryContext(canary_hash=rev, rollout_name=rev, rollout_namespace=NAMESPACE)


def run_controller(runs: int, *, worst_delay: float) -> tuple[GroupedAnswers, dict[str, str], int]:
    """Every run's passes as the reconciler makes them: the run starts at a scattered
    moment; each pass measures what is due, then registers the next due moment
    (``expect``) and comes back at ``next_due`` plus a worker's delay (a busy queue, up
    to ``worst_delay``). Returns the measurer, each run's phase and the measurements."""
    starts = {f"r{i:02d}": 0.37 * i for i in range(runs)}  # every fraction of a second
    measurer = GroupedAnswers(starts)
    engine = AnalysisEngine(measurer, batches=Batches(tick=0.5))
    status: dict[str, AnalysisRunStatus] = {}
    passes: list[tuple[float, str]] = []
    for rev, started in starts.items():
        status[rev] = start_run(key="step-1", revision=rev, metrics=[], now=at(started))
        heapq.heappush(passes, (started, rev))
    turn = 0
    while passes:
        seconds, rev = heapq.heappop(passes)
        now = at(seconds)
        measurer.clock[0] = seconds
        ctx = context(rev)
        run = engine.advance(status[rev], templates=TEMPLATES, ref=REF, context=ctx, now=now)
        status[rev] = run
        bound = engine.bind(TEMPLATES, REF, revision=rev, context=ctx)
        engine.expect(run, bound, context=ctx, now=now)
        due = engine.next_due(run, bound, now=now)
        if due is not None:
            turn += 1
            delay = (turn * 7919) % 97 / 97 * worst_delay  # spread, reproducible
            seconds = max(seconds + 0.05, (due - T0).total_seconds() + delay)
            heapq.heappush(passes, (seconds, rev))
    measured = sum(len(run.metrics[0].measurements) for run in status.values())
    return measurer, {rev: run.phase for rev, run in status.items()}, measured


@pytest.mark.parametrize("worst_delay", [0.2, 3.0])
def test_runs_started_at_scattered_moments_share_the_grouped_queries(worst_delay: float) -> None:
    measurer, phases, measured = run_controller(20, worst_delay=worst_delay)

    assert set(phases.values()) == {"Successful"}
    ticks = {seconds // 0.5 for seconds, _ in measurer.queries}
    # At most one grouped query per tick, whatever the number of runs measured in it,
    # first-data polls included ...
    assert len(measurer.queries) == len(ticks)
    # ... so runs measured in the same tick shared one: fewer queries than half the
    # recorded measurements (the polls before the first series are on top of those),
    # and most queries named several revisions.
    assert len(measurer.queries) * 2 <= measured
    sizes = sorted(size for _, size in measurer.queries)
    assert sizes[len(sizes) // 2] >= 3


def test_a_batched_metric_is_due_on_the_grid() -> None:
    engine = AnalysisEngine(GroupedAnswers({}), batches=Batches(tick=0.5))
    bound = engine.bind(TEMPLATES, REF, revision="r00", context=context("r00"))
    run = start_run(key="step-1", revision="r00", metrics=[], now=at(0))
    # First due one second after the start (the batch's first delay): on the grid.
    assert engine.next_due(run, bound, now=at(0.2)) == at(1.0)
    grid = Batches(tick=0.5)
    assert grid.on_grid(at(1.2)) == at(1.5)
    assert grid.on_grid(at(1.5)) == at(1.5)
    assert grid.on_grid(at(1.50001)) == at(2.0)
