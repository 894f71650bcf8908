"""The comparison judge on samples from the real Prometheus scraping real demo apps.

Each side is a demo-app process with its own revision label; each side's samples come
from one range query at the scrape interval (``PrometheusMeasurer.measure_samples``).
Waiting is polling a condition with a deadline, never a sleep.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from controller.analysis.compare import judge_samples
from controller.analysis.prometheus import PrometheusMeasurer
from controller.analysis.run import AnalysisEngine, start_run
from controller.analysis.templating import QueryContext, render
from controller.analysis.values import QueryFailure, SamplePair
from controller.api.analysis import Compare
from tests.analysis.helpers import template
from tests.analysis.test_prometheus_real import Load, drive
from tests.waiting import wait_until

pytestmark = pytest.mark.prometheus

NAMESPACE = "t-compare"
# Mean request latency of one revision, per scrape.
SELECTOR = '{namespace="t-compare",revision="{{canary.hash}}"}'
MEAN_LATENCY = (
    f"rate(http_request_duration_seconds_sum{SELECTOR}[3s])"
    f" / rate(http_request_duration_seconds_count{SELECTOR}[3s])"
)
JUDGE = Compare(
    against="stable", direction="increase", confidence=0.98, tolerance=0.25, min_samples=12
)


@pytest.fixture
def load() -> Iterator[Load]:
    traffic = Load()
    yield traffic
    traffic.stop()


def _queries(canary: str, stable: str) -> tuple[str, str]:
    context = QueryContext(canary_hash=canary, stable_hash=stable)
    return render(MEAN_LATENCY, context), render(MEAN_LATENCY, context.for_stable())


def _samples(prometheus_url: str, canary: str, stable: str) -> SamplePair:
    measurer = PrometheusMeasurer(prometheus_url)
    canary_promql, stable_promql = _queries(canary, stable)
    found: list[SamplePair] = []

    def enough() -> bool:
        end = datetime.now(UTC)
        outcome = measurer.measure_samples(
            canary_promql,
            stable_promql,
            address=None,
            start=end - timedelta(seconds=40),
            end=end,
            step=1.0,
            timeout=5.0,
        )
        assert not isinstance(outcome, QueryFailure), outcome
        finite = [sum(v == v for v in side) for side in (outcome.canary, outcome.comparison)]
        found[:] = [outcome]
        return min(finite) >= 20

    wait_until(enough, timeout=90, what="20 latency samples on each side", interval=0.5)
    return found[0]


def _start(demo_app, load: Load, latency: str) -> str:
    revision = uuid.uuid4().hex[:10]
    app = demo_app(
        {"DEMO_LATENCY_SECONDS": latency}, labels={"namespace": NAMESPACE, "revision": revision}
    )
    load.start(app.url)
    load.start(app.url)
    return revision


def test_a_slower_canary_fails_and_an_identical_one_passes(prometheus, demo_app, load) -> None:
    stable = _start(demo_app, load, "0.02")
    slow = _start(demo_app, load, "0.08")
    same = _start(demo_app, load, "0.02")

    slow_pair = _samples(prometheus.url, slow, stable)
    failed = judge_samples("latency", slow_pair.canary, slow_pair.comparison, JUDGE)
    assert failed.verdict == "Failed", failed.message
    assert failed.evidence.canary_count >= 20 and failed.evidence.comparison_count >= 20
    assert failed.evidence.effect is not None and failed.evidence.effect > 1.0
    assert failed.message.startswith("latency: increase beyond tolerance 25%")

    same_pair = _samples(prometheus.url, same, stable)
    passed = judge_samples("latency", same_pair.canary, same_pair.comparison, JUDGE)
    assert passed.verdict == "Successful", passed.message


def _compared_run(prometheus_url: str, canary: str, stable: str) -> tuple[str, str]:
    """A run of one ``compare`` metric (no threshold) driven by the engine with the real
    Prometheus until it is decided: its phase and the measurement's message."""
    templ = template(
        {
            "name": "latency",
            "interval": "60s",
            "count": 1,
            "compare": {"against": "stable", "minSamples": 12},
            "provider": {"prometheus": {"query": MEAN_LATENCY}},
        }
    )
    context = QueryContext(
        canary_hash=canary, stable_hash=stable, rollout_name="shop", rollout_namespace=NAMESPACE
    )
    engine = AnalysisEngine(PrometheusMeasurer(prometheus_url), scrape_interval=1.0)
    run = start_run(key="step-1", revision=canary, metrics=[], now=datetime.now(UTC))
    run = drive(engine, templ, context, run=run, deadline=90.0)
    return run.phase, run.metrics[0].measurements[-1].message


def test_the_engine_fails_a_slower_canary_and_passes_an_identical_one(
    prometheus, demo_app, load
) -> None:
    stable = _start(demo_app, load, "0.02")
    slow = _start(demo_app, load, "0.08")
    same = _start(demo_app, load, "0.02")
    _samples(prometheus.url, slow, stable)  # every side is scraped and has traffic

    phase, message = _compared_run(prometheus.url, slow, stable)
    assert phase == "Failed", message
    assert message.startswith("latency: increase beyond tolerance 25%: canary median ")
    assert " vs stable " in message and ", p=" in message and "n=" in message
    assert "samples since the run started" in message and "every 1s" in message

    phase, message = _compared_run(prometheus.url, same, stable)
    assert phase == "Successful", message
    assert message.startswith("latency: no significant increase")


def test_a_revision_without_traffic_is_inconclusive(prometheus, demo_app, load) -> None:
    stable = _start(demo_app, load, "0.02")
    idle = uuid.uuid4().hex[:10]
    demo_app(labels={"namespace": NAMESPACE, "revision": idle})
    prometheus.wait_for_series(f'up{{revision="{idle}"}} == 1', deadline=30)
    canary_promql, stable_promql = _queries(idle, stable)
    end = datetime.now(UTC)
    outcome = PrometheusMeasurer(prometheus.url).measure_samples(
        canary_promql,
        stable_promql,
        address=None,
        start=end - timedelta(seconds=30),
        end=end,
        step=1.0,
        timeout=5.0,
    )
    assert isinstance(outcome, SamplePair)
    result = judge_samples("latency", outcome.canary, outcome.comparison, JUDGE)
    assert result.verdict == "Inconclusive"
    assert result.message.startswith("latency: too few samples to compare: canary 0, stable ")


def test_a_rejected_query_is_a_failure_value(prometheus) -> None:
    end = datetime.now(UTC)
    outcome = PrometheusMeasurer(prometheus.url).measure_samples(
        "rate(up[",
        "up",
        address=None,
        start=end - timedelta(seconds=10),
        end=end,
        step=1.0,
        timeout=5.0,
    )
    assert isinstance(outcome, QueryFailure) and outcome.kind == "rejected"
