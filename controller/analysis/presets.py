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

Each is guarded by ``minRequests`` (default 20): ``... and (sum(increase(<requests in
the window>)) >= 20)``, so a window holding fewer requests is no data, never a verdict. A
ratio over the first few requests a canary serves is noise: with 30% errors, 12 requests
show none 1.4% of the time; with 1% errors, one in ten such windows shows a 5xx share
over 5%. With the guard the first verdict can be taken as soon as the data is there
(``controller.analysis.run``) without judging a revision on two samples.

``grouped_query`` writes the same query for many revisions at once, ``sum by
(namespace, revision)``, one series per revision: ``controller.analysis.batch`` sends one
such query for every revision measured at the same moment.

Metric and label names are overridable on the preset; they are validated as Prometheus
identifiers by the model, so only the error-code regex (and, in a grouped query, the
namespaces and revisions) need escaping here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from controller.analysis.burnrate import BurnRule, error_budget, scaled_rules
from controller.analysis.templating import escape_string
from controller.api.analysis import ErrorRatePreset, LatencyPreset, Metric, SloPreset, Threshold
from controller.api.duration import format_duration

# The rules' own `for`, used when the metric does not set one (see Metric.effective_for).
ERROR_RATE_FOR = 120.0
LATENCY_FOR = 300.0


def _scope(namespace_label: str, revision_label: str) -> str:
    return f'{namespace_label}="{{{{rollout.namespace}}}}",{revision_label}="{{{{canary.hash}}}}"'


def error_rate_query(preset: ErrorRatePreset) -> str:
    """The 5xx share of requests of the canary revision over the preset's window."""
    return _error_rate(preset, _scope(preset.namespace_label, preset.revision_label))


def latency_query(preset: LatencyPreset) -> str:
    """The preset's quantile of request latency (seconds) of the canary revision."""
    return _latency(preset, _scope(preset.namespace_label, preset.revision_label))


def _by(labels: tuple[str, ...]) -> str:
    return f" by ({', '.join(labels)}) " if labels else ""


def _error_rate(preset: ErrorRatePreset, scope: str, group: tuple[str, ...] = ()) -> str:
    by = _by(group)
    window = format_duration(preset.window)
    codes = escape_string(preset.error_codes)
    metric = preset.requests_metric
    all_requests = f"{metric}{{{scope}}}[{window}]"
    ratio = (
        f'sum{by}(rate({metric}{{{scope},{preset.code_label}=~"{codes}"}}[{window}]))'
        f" / sum{by}(rate({all_requests}))"
    )
    return _guarded(ratio, f"sum{by}(increase({all_requests}))", preset.min_requests)


def _latency(preset: LatencyPreset, scope: str, group: tuple[str, ...] = ()) -> str:
    by = _by(group)
    window = format_duration(preset.window)
    quantile = (
        f"histogram_quantile({preset.quantile:g}, sum{_by(('le', *group))}"
        f"(rate({preset.histogram_metric}_bucket{{{scope}}}[{window}])))"
    )
    count = f"sum{by}(increase({preset.histogram_metric}_count{{{scope}}}[{window}]))"
    return _guarded(quantile, count, preset.min_requests)


def _guarded(value: str, requests: str, minimum: int) -> str:
    """``value`` only where ``requests`` reached ``minimum`` (no data otherwise)."""
    if minimum <= 0:
        return value
    return f"({value}) and ({requests} >= {minimum})"


@dataclass(frozen=True)
class GroupedQuery:
    """A preset's query for many (namespace, revision) pairs at once: one series each,
    labelled with the preset's namespace and revision labels. Hashable: equal presets
    give equal grouped queries, which is what lets measurements share one."""

    preset: ErrorRatePreset | LatencyPreset

    @property
    def namespace_label(self) -> str:
        return self.preset.namespace_label

    @property
    def revision_label(self) -> str:
        return self.preset.revision_label

    def query(self, namespaces: Iterable[str], revisions: Iterable[str]) -> str:
        """The query for every namespace and revision named (a revision present in two
        of the namespaces gives two series; callers pick the pairs they asked for)."""
        scope = (
            f'{self.namespace_label}=~"{_alternatives(namespaces)}",'
            f'{self.revision_label}=~"{_alternatives(revisions)}"'
        )
        group = (self.namespace_label, self.revision_label)
        if isinstance(self.preset, ErrorRatePreset):
            return _error_rate(self.preset, scope, group)
        return _latency(self.preset, scope, group)


def grouped_query(metric: Metric) -> GroupedQuery | None:
    """The grouped form of a preset metric's query; None for any other metric."""
    if metric.error_rate is not None:
        return GroupedQuery(metric.error_rate)
    if metric.latency is not None:
        return GroupedQuery(metric.latency)
    return None


_REGEX_SPECIAL = frozenset("\\.+*?()|[]{}^$")


def _alternatives(values: Iterable[str]) -> str:
    """``a|b|c`` matching exactly these values (RE2, anchored by PromQL), escaped for a
    double-quoted PromQL string."""
    escaped = ("".join("\\" + c if c in _REGEX_SPECIAL else c for c in v) for v in values)
    return escape_string("|".join(sorted(set(escaped))))


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


_SLO_WINDOW = re.compile(r"\{\{\s*slo\.window\s*\}\}")
SLO_MAX = 1.0
"""An slo metric's value is the worst rule's burn rate over its factor: above 1 fires."""


def slo_rules(preset: SloPreset) -> tuple[BurnRule, ...]:
    """The burn-rate rules the preset judges by, scaled down to its step."""
    return scaled_rules(preset.step, min_window=preset.min_window)


def slo_error_ratio(preset: SloPreset, window: float) -> str:
    """The canary's error ratio over ``window`` seconds, as the preset measures it."""
    if preset.error_query is not None:
        return _SLO_WINDOW.sub(format_duration(window), preset.error_query)
    errors = preset.errors.model_copy(update={"window": window})
    return _error_rate(errors, _scope(errors.namespace_label, errors.revision_label))


def slo_query(preset: SloPreset) -> str:
    """The worst rule's ``min(ratio over long, ratio over short) / (factor x budget)``.

    ``clamp_max(a, scalar(b)) and b`` is min(a, b) and nothing when either side has no
    data (a rule needs both windows); the rules are told apart by a label so that
    ``max`` takes the worst of those that have data.
    """
    budget = error_budget(preset.objective)
    terms = []
    for index, rule in enumerate(slo_rules(preset)):
        long = slo_error_ratio(preset, rule.long)
        short = slo_error_ratio(preset, rule.short)
        both = f"(clamp_max(({long}), scalar({short})) and ({short}))"
        terms.append(
            f'label_replace({both} / {rule.factor * budget:.6g}, "burn_rule", "{index}", "", "")'
        )
    return f"max({' or '.join(terms)})"


def metric_query(metric: Metric) -> str:
    """The query template of any metric: the provider's query or the preset's."""
    if metric.slo is not None:
        return slo_query(metric.slo)
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
    if metric.slo is not None:
        return Threshold(max=SLO_MAX)
    raise ValueError(f"metric {metric.name!r} has no threshold")  # the model forbids this


def metric_for(metric: Metric) -> float:
    """Seconds a breach must hold: the metric's ``for``, else its preset rule's."""
    return metric.effective_for
