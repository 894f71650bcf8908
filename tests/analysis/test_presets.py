"""Preset PromQL text, thresholds and the rules' default `for` windows."""

from __future__ import annotations

from controller.analysis.presets import (
    ERROR_RATE_FOR,
    LATENCY_FOR,
    error_rate_query,
    grouped_query,
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
    assert render(error_rate_query(ErrorRatePreset(min_requests=0)), CTX) == (
        'sum(rate(http_requests_total{namespace="shop",revision="abc",code=~"5.."}[1m]))'
        ' / sum(rate(http_requests_total{namespace="shop",revision="abc"}[1m]))'
    )


def test_a_window_with_too_few_requests_is_no_data() -> None:
    """By default the ratio is only returned when the window holds 20 requests."""
    assert render(error_rate_query(ErrorRatePreset()), CTX) == (
        '(sum(rate(http_requests_total{namespace="shop",revision="abc",code=~"5.."}[1m]))'
        ' / sum(rate(http_requests_total{namespace="shop",revision="abc"}[1m])))'
        ' and (sum(increase(http_requests_total{namespace="shop",revision="abc"}[1m])) >= 20)'
    )
    assert render(latency_query(LatencyPreset(min_requests=5)), CTX).endswith(
        ' and (sum(increase(http_request_duration_seconds_count{namespace="shop",'
        'revision="abc"}[1m])) >= 5)'
    )


def test_grouped_queries_ask_for_many_revisions_one_series_each() -> None:
    grouped = grouped_query(metric(provider=None, threshold=None, errorRate={"window": "10s"}))
    assert grouped is not None
    assert grouped.query(["shop", "web.x"], ["b2", "a1", "b2"]) == (
        "(sum by (namespace, revision) (rate(http_requests_total{namespace=~"
        '"shop|web\\\\.x",revision=~"a1|b2",code=~"5.."}[10s])) / sum by (namespace, revision) '
        '(rate(http_requests_total{namespace=~"shop|web\\\\.x",revision=~"a1|b2"}[10s])))'
        " and (sum by (namespace, revision) (increase(http_requests_total{namespace=~"
        '"shop|web\\\\.x",revision=~"a1|b2"}[10s])) >= 20)'
    )
    latency = grouped_query(metric(provider=None, threshold=None, latency={"minRequests": 0}))
    assert latency is not None
    assert latency.query(["n"], ["r"]) == (
        "histogram_quantile(0.9, sum by (le, namespace, revision) "
        '(rate(http_request_duration_seconds_bucket{namespace=~"n",revision=~"r"}[1m])))'
    )
    # Equal presets share a batch; any other metric has no grouped form.
    assert grouped == grouped_query(
        metric(provider=None, threshold=None, errorRate={"window": "10s"})
    )
    assert grouped_query(metric()) is None


def test_error_rate_names_are_overridable() -> None:
    preset = ErrorRatePreset(
        requests_metric="requests",
        error_codes="5..|429",
        code_label="status",
        revision_label="rev",
        namespace_label="ns",
        window=300,
        min_requests=0,
    )
    assert render(error_rate_query(preset), CTX) == (
        'sum(rate(requests{ns="shop",rev="abc",status=~"5..|429"}[5m]))'
        ' / sum(rate(requests{ns="shop",rev="abc"}[5m]))'
    )


def test_latency_matches_the_slow_responses_rule() -> None:
    assert render(latency_query(LatencyPreset(min_requests=0)), CTX) == (
        "histogram_quantile(0.9, sum by (le) (rate("
        'http_request_duration_seconds_bucket{namespace="shop",revision="abc"}[1m])))'
    )
    custom = LatencyPreset(quantile=0.99, histogram_metric="rpc_seconds", window=30, min_requests=0)
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
