"""Preset PromQL text, thresholds and the rules' default `for` windows."""

from __future__ import annotations

from controller.analysis.presets import (
    ERROR_RATE_FOR,
    LATENCY_FOR,
    error_rate_query,
    latency_query,
    metric_for,
    metric_query,
    metric_threshold,
)
from controller.analysis.templating import QueryContext, render
from controller.api.analysis import ErrorRatePreset, LatencyPreset, Threshold
from tests.analysis.helpers import metric

CTX = QueryContext(canary_hash="abc", rollout_namespace="shop")


def test_error_rate_matches_the_high_error_rate_rule() -> None:
    assert render(error_rate_query(ErrorRatePreset()), CTX) == (
        'sum(rate(http_requests_total{namespace="shop",revision="abc",code=~"5.."}[1m]))'
        ' / sum(rate(http_requests_total{namespace="shop",revision="abc"}[1m]))'
    )


def test_error_rate_names_are_overridable() -> None:
    preset = ErrorRatePreset(
        requests_metric="requests",
        error_codes="5..|429",
        code_label="status",
        revision_label="rev",
        namespace_label="ns",
        window=300,
    )
    assert render(error_rate_query(preset), CTX) == (
        'sum(rate(requests{ns="shop",rev="abc",status=~"5..|429"}[5m]))'
        ' / sum(rate(requests{ns="shop",rev="abc"}[5m]))'
    )


def test_latency_matches_the_slow_responses_rule() -> None:
    assert render(latency_query(LatencyPreset()), CTX) == (
        "histogram_quantile(0.9, sum by (le) (rate("
        'http_request_duration_seconds_bucket{namespace="shop",revision="abc"}[1m])))'
    )
    custom = LatencyPreset(quantile=0.99, histogram_metric="rpc_seconds", window=30)
    assert latency_query(custom).startswith("histogram_quantile(0.99, sum by (le) (rate(rpc_")


def test_thresholds_and_for_windows() -> None:
    error_rate = metric(provider=None, threshold=None, errorRate={})
    latency = metric(provider=None, threshold=None, latency={"max": "1500ms"})
    assert metric_threshold(error_rate) == Threshold(max=0.05)
    assert metric_threshold(latency) == Threshold(max=1.5)
    assert (metric_for(error_rate), metric_for(latency)) == (ERROR_RATE_FOR, LATENCY_FOR)
    assert (ERROR_RATE_FOR, LATENCY_FOR) == (120.0, 300.0)
    assert metric_for(metric(provider=None, threshold=None, errorRate={}, **{"for": "30s"})) == 30
    plain = metric()
    assert metric_query(plain) == "vector(0)" and metric_for(plain) == 0
