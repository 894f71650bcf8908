"""The PromQL, threshold and ``for`` window of a metric, presets included.

Called by the measurement loop and the backtest to turn any ``Metric`` into one query
template (placeholders still in it, rendered later by ``templating``) and one
``Threshold``. The ``errorRate`` and ``latency`` presets write the queries behind the
usual alerting rules, scoped to the revision under test by namespace and revision
labels::

    HighErrorRate: sum(rate(http_requests_total{namespace="..",revision="..",code=~"5.."}[1m]))
                 / sum(rate(http_requests_total{namespace="..",revision=".."}[1m]))  > 0.05 for 2m
    SlowResponses: histogram_quantile(0.9, sum by (le) (rate(
                     http_request_duration_seconds_bucket{namespace="..",revision=".."}[1m])))
                                                                                  > 2 for 5m

Metric and label names are overridable on the preset; they are validated as Prometheus
identifiers by the model, so only the error-code regex needs escaping here.
"""

from __future__ import annotations

from controller.analysis.templating import escape_string
from controller.api.analysis import ErrorRatePreset, LatencyPreset, Metric, Threshold
from controller.api.duration import format_duration

# The rules' own `for`, used when the metric does not set one (see Metric.effective_for).
ERROR_RATE_FOR = 120.0
LATENCY_FOR = 300.0


def _scope(namespace_label: str, revision_label: str) -> str:
    return f'{namespace_label}="{{{{rollout.namespace}}}}",{revision_label}="{{{{canary.hash}}}}"'


def error_rate_query(preset: ErrorRatePreset) -> str:
    """The 5xx share of requests of the canary revision over the preset's window."""
    scope = _scope(preset.namespace_label, preset.revision_label)
    window = format_duration(preset.window)
    codes = escape_string(preset.error_codes)
    metric = preset.requests_metric
    return (
        f'sum(rate({metric}{{{scope},{preset.code_label}=~"{codes}"}}[{window}]))'
        f" / sum(rate({metric}{{{scope}}}[{window}]))"
    )


def latency_query(preset: LatencyPreset) -> str:
    """The preset's quantile of request latency (seconds) of the canary revision."""
    scope = _scope(preset.namespace_label, preset.revision_label)
    window = format_duration(preset.window)
    return (
        f"histogram_quantile({preset.quantile:g}, sum by (le) "
        f"(rate({preset.histogram_metric}_bucket{{{scope}}}[{window}])))"
    )


def traffic_query(metric: Metric) -> tuple[str, str] | None:
    """For a preset: (the query counting the canary's requests over the preset's window,
    the window as written); None for other metrics, whose queries we cannot read.

    Asked only when a measurement found no data, so that ``deployctl status`` can say
    why: "the canary served 0 requests in the last 1m" is a different problem from "no
    series at all" (the pods are not scraped, or the labels are wrong).
    """
    preset: ErrorRatePreset | LatencyPreset | None = metric.error_rate or metric.latency
    if preset is None:
        return None
    scope = _scope(preset.namespace_label, preset.revision_label)
    window = format_duration(preset.window)
    series = (
        preset.requests_metric
        if isinstance(preset, ErrorRatePreset)
        else f"{preset.histogram_metric}_count"
    )
    return f"sum(increase({series}{{{scope}}}[{window}]))", window


def metric_query(metric: Metric) -> str:
    """The query template of any metric: the provider's query or the preset's."""
    if metric.error_rate is not None:
        return error_rate_query(metric.error_rate)
    if metric.latency is not None:
        return latency_query(metric.latency)
    prometheus = metric.provider.prometheus if metric.provider is not None else None
    if prometheus is None:
        raise ValueError(f"metric {metric.name!r} is not a Prometheus query")
    return prometheus.query


def metric_threshold(metric: Metric) -> Threshold:
    """The metric's own threshold, else the preset's ``max``."""
    if metric.threshold is not None:
        return metric.threshold
    if metric.error_rate is not None:
        return Threshold(max=metric.error_rate.max)
    if metric.latency is not None:
        return Threshold(max=metric.latency.max)
    raise ValueError(f"metric {metric.name!r} has no threshold")  # the model forbids this


def metric_for(metric: Metric) -> float:
    """Seconds a breach must hold: the metric's ``for``, else its preset rule's."""
    return metric.effective_for
