"""The analysis benchmark's own parts, without a sandbox: the synthetic exporter's
counters (they only grow, split by the pod's error rate, per revision) and the naming of
the queries the controller sends (the presets' real PromQL)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from controller.analysis.presets import grouped_query, traffic_query
from controller.api.analysis import Metric
from controller.names import REVISION_LABEL
from tests.bench.analysis import QueryKinds, SyntheticExporter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def pod(name: str, revision: str, *, ready: bool, error_rate: str | None = None) -> dict[str, Any]:
    env = [{"name": "DEMO_VERSION", "value": "v2"}]
    if error_rate is not None:
        env.append({"name": "DEMO_ERROR_RATE", "value": error_rate})
    return {
        "metadata": {"namespace": "ns", "name": name, "labels": {REVISION_LABEL: revision}},
        "spec": {"containers": [{"name": "app", "env": env}]},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def counters(exporter: SyntheticExporter) -> dict[tuple[str, str], float]:
    out = {}
    for family in text_string_to_metric_families(exporter.exposition()):
        for sample in family.samples:
            out[(sample.labels["revision"], sample.labels["code"])] = sample.value
    return out


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def exporter(clock: Clock) -> Iterator[SyntheticExporter]:
    made = SyntheticExporter(clock=clock)
    yield made
    made.close()


def test_counters_grow_while_ready_and_keep_what_a_gone_pod_served(
    exporter: SyntheticExporter, clock: Clock
) -> None:
    exporter.observe(pod("good-1", "good", ready=False))
    exporter.observe(pod("bad-1", "bad", ready=False, error_rate="0.3"))
    assert counters(exporter) == {}  # nothing Ready, nothing served

    exporter.observe(pod("good-1", "good", ready=True))
    exporter.observe(pod("bad-1", "bad", ready=True, error_rate="0.3"))
    clock.now += 2  # 20 requests each at 10/s
    assert counters(exporter) == pytest.approx(
        {("good", "200"): 20, ("good", "500"): 0, ("bad", "200"): 14, ("bad", "500"): 6}
    )

    exporter.observe(pod("bad-1", "bad", ready=False, error_rate="0.3"))
    clock.now += 5
    after = counters(exporter)
    assert after[("bad", "500")] == pytest.approx(6)  # stopped, not reset
    assert after[("good", "200")] == pytest.approx(70)
    assert exporter.first_ready == {("ns", "good"): 100.0, ("ns", "bad"): 100.0}


def test_queries_are_named_by_what_the_presets_send() -> None:
    metric = Metric.model_validate({"name": "errors", "errorRate": {"window": "10s"}})
    grouped = grouped_query(metric)
    assert grouped is not None
    traffic = traffic_query(metric)
    assert traffic is not None
    kinds = QueryKinds()

    assert kinds(grouped.query(["ns"], ["abc", "def", "ghi"])) == QueryKinds.GROUPED
    assert kinds.revisions == [3]
    assert kinds(traffic[0].replace("{{rollout.namespace}}", "ns")) == QueryKinds.EXPLAIN
    assert kinds("up") == "other"
