"""Measure a service's error budget left over its SLO window, for the DeliveryPolicy's
error-budget release freeze (``controller.policy.budget`` decides).

Called by ``controller.policy_gate`` before a new revision starts. One instant query:
the rule's ``errorQuery`` with ``{{slo.window}}`` set to the window, or by default the
5xx share of the Rollout's namespace (all its revisions: the service as its users saw
it)::

    sum(rate(http_requests_total{namespace="..",code=~"5.."}[30d]))
      / sum(rate(http_requests_total{namespace=".."}[30d]))

The namespace and name are escaped by ``templating.render``. The budget left is
``burnrate.remaining_budget`` of that ratio.
"""

from __future__ import annotations

import re

from controller.analysis.burnrate import remaining_budget
from controller.analysis.run import Measurer
from controller.analysis.templating import QueryContext, TemplateError, escape_string, render
from controller.analysis.values import QueryFailure, short_query
from controller.api.duration import format_duration
from controller.api.policy import ErrorBudgetFreeze

_SLO_WINDOW = re.compile(r"\{\{\s*slo\.window\s*\}\}")
TIMEOUT = 10.0


def budget_query(rule: ErrorBudgetFreeze) -> str:
    """The template of the service's error ratio over the rule's window."""
    window = format_duration(rule.window)
    if rule.error_query is not None:
        return _SLO_WINDOW.sub(window, rule.error_query)
    scope = f'{rule.namespace_label}="{{{{rollout.namespace}}}}"'
    codes = escape_string(rule.error_codes)
    metric = rule.requests_metric
    return (
        f'sum(rate({metric}{{{scope},{rule.code_label}=~"{codes}"}}[{window}]))'
        f" / sum(rate({metric}{{{scope}}}[{window}]))"
    )


def budget_left(
    measurer: Measurer, rule: ErrorBudgetFreeze, namespace: str, name: str
) -> tuple[float | None, str]:
    """(budget share left, '') or (None, why it is unknown); never raises."""
    context = QueryContext(rollout_namespace=namespace, rollout_name=name)
    try:
        promql = render(budget_query(rule), context)
    except TemplateError as exc:
        return None, str(exc)
    outcome = measurer.measure(promql, address=None, timeout=TIMEOUT, budget=TIMEOUT)
    if isinstance(outcome, QueryFailure):
        return None, outcome.message
    if not outcome.samples:
        return None, f"no data for {short_query(promql)}"
    ratio = outcome.samples[0].value
    if ratio != ratio:  # NaN: no requests at all over the window
        return None, "no requests over the SLO window"
    return remaining_budget(ratio, rule.objective), ""
