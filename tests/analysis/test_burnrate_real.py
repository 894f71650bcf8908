"""The slo preset's burn-rate gate and the traffic count of paced steps against a real
Prometheus scraping real demo-app processes (``DEMO_ERROR_RATE`` sets the 5xx share).

Each test has its own revision label; waiting is polling with a deadline.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controller.analysis.backtest import backtest
from controller.analysis.pacing import count_requests
from controller.analysis.prometheus import PrometheusMeasurer
from controller.analysis.run import AnalysisEngine
from controller.api.rollout import Pause
from tests.analysis.test_prometheus_real import (
    Load,
    context,
    drive,
    labels,
    preset_template,
    revision,
    wait_for_data,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.prometheus


@pytest.fixture
def load() -> Iterator[Load]:
    traffic = Load()
    yield traffic
    traffic.stop()


# A step of 10s scales both workbook rules to 10s and 5s windows (the floor set here).
SLO = {"objective": 99.9, "step": "10s", "minWindow": "5s", "errorRate": {"minRequests": 20}}


def test_a_canary_burning_its_budget_at_20x_fails_the_gate(prometheus, demo_app, load) -> None:
    rev = revision()
    load.start(demo_app({"DEMO_ERROR_RATE": "0.02"}, labels=labels(rev)).url)
    templ = preset_template(slo=SLO)
    wait_for_data(prometheus, templ, context(rev))
    run = drive(AnalysisEngine(PrometheusMeasurer(prometheus.url)), templ, context(rev))
    assert run.phase == "Failed", run
    value = float(run.metrics[0].measurements[-1].value or "nan")
    # 2% errors against a 0.1% budget is 20x; the scaled rule's factor is 6: 20/6.
    assert value == pytest.approx(20 / 6, rel=0.6)
    assert "> max 1" in run.message

    # `deployctl analyze` replays the same gate over the past: it would have failed.
    # Asked again until the answer has the failure (Prometheus may lag on a busy machine).
    def replayed() -> Any:
        now = datetime.now(UTC)
        report = backtest(
            templ,
            args={},
            context=context(rev),
            fetch=PrometheusMeasurer(prometheus.url),
            start=now - timedelta(seconds=60),
            end=now,
            step=2.0,
        )
        (metric,) = report.metrics
        return metric

    metric = wait_until(
        replayed,
        ok=lambda m: m.failure is None and any(e.phase == "Failed" for e in m.events),
        timeout=60,
        what="the backtest to show the gate failing",
    )
    failed = next(e for e in metric.events if e.phase == "Failed")
    assert float(failed.value or "nan") > 1 and "> max 1" in failed.message


def test_a_canary_within_its_budget_passes_the_gate(prometheus, demo_app, load) -> None:
    rev = revision()
    load.start(demo_app(labels=labels(rev)).url)
    templ = preset_template(slo=SLO)
    wait_for_data(prometheus, templ, context(rev))
    run = drive(AnalysisEngine(PrometheusMeasurer(prometheus.url)), templ, context(rev))
    assert run.phase == "Successful", run


def test_the_canary_requests_are_counted_since_the_step_began(prometheus, demo_app, load) -> None:
    rev = revision()
    load.start(demo_app(labels=labels(rev)).url)
    pause = Pause.model_validate({"untilRequests": 100, "noTrafficAfter": "30s"})
    measurer = PrometheusMeasurer(prometheus.url)

    def counted() -> float:
        count = count_requests(measurer, pause, context=context(rev), elapsed=60.0)
        assert count.problem is None, count.problem
        return count.served or 0.0

    wait_until(lambda: counted() >= 100, timeout=60, what="100 canary requests counted")
    count = count_requests(measurer, pause, context=context(rev), elapsed=60.0)
    assert count.recent is not None and count.recent > 0


def test_a_canary_without_requests_counts_none(prometheus, demo_app) -> None:
    rev = revision()
    demo_app(labels=labels(rev))
    prometheus.wait_for_series(f'up{{revision="{rev}"}} == 1', deadline=30)
    pause = Pause.model_validate({"untilRequests": 100})
    count = count_requests(
        PrometheusMeasurer(prometheus.url), pause, context=context(rev), elapsed=60.0
    )
    assert count.problem is None and count.served == 0.0 and count.recent == 0.0
