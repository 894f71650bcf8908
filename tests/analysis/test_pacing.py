"""Counting a paced step's requests: the queries sent and what a missing answer means
(a recording double of our own ``Measurer`` seam; the real Prometheus is in
``test_burnrate_real.py``)."""

from __future__ import annotations

from controller.analysis.pacing import count_requests
from controller.analysis.templating import QueryContext
from controller.analysis.values import QueryFailure, QueryOutcome, QueryResult, Sample
from controller.api.rollout import Pause

CONTEXT = QueryContext(canary_hash='ab"c', rollout_namespace="shop")
PAUSE = Pause.model_validate({"untilRequests": 100, "noTrafficAfter": "5m"})


class Recording:
    def __init__(self, *answers: QueryOutcome) -> None:
        self.answers = list(answers)
        self.queries: list[str] = []

    def measure(
        self, promql: str, *, address: str | None, timeout: float, budget: float
    ) -> QueryOutcome:
        self.queries.append(promql)
        return self.answers.pop(0)


def value(number: float) -> QueryResult:
    return QueryResult(query="q", samples=(Sample(labels={}, value=number),))


def test_counts_since_the_step_began_and_over_the_quiet_window_escaped() -> None:
    measurer = Recording(value(1240.0), value(300.0))
    counted = count_requests(measurer, PAUSE, context=CONTEXT, elapsed=725.4)
    assert (counted.served, counted.recent, counted.problem) == (1240.0, 300.0, None)
    assert measurer.queries == [
        'sum(increase(http_requests_total{namespace="shop",revision="ab\\"c"}[725s]))',
        'sum(increase(http_requests_total{namespace="shop",revision="ab\\"c"}[5m]))',
    ]


def test_a_step_younger_than_two_scrapes_has_served_nothing_yet() -> None:
    measurer = Recording(value(7.0))
    counted = count_requests(measurer, PAUSE, context=CONTEXT, elapsed=12.0)
    assert counted.served == 0.0 and counted.recent == 7.0
    assert len(measurer.queries) == 1


def test_no_series_is_no_traffic_and_no_answer_is_unknown() -> None:
    empty = count_requests(
        Recording(QueryResult(query="q"), QueryResult(query="q")),
        PAUSE,
        context=CONTEXT,
        elapsed=60.0,
    )
    assert (empty.served, empty.recent) == (0.0, 0.0)
    down = QueryFailure(kind="unavailable", query="q", message="connection refused")
    failed = count_requests(Recording(down), PAUSE, context=CONTEXT, elapsed=60.0)
    assert failed.served is None and failed.problem == "connection refused"
