"""The budgets that keep one tenant from stalling, crashing or flooding the controller.

One controller serves every namespace, so whatever a Rollout, AnalysisTemplate,
DeliveryPolicy or ConfigMap author writes must cost a bounded amount of time, memory
and CPU, and must produce bounded text. Every such bound is a ``Limit`` here, with a
name that the error it produces quotes (``... (limit prometheusBody: 2 MiB)``), so a
person who meets one can find it in the limits table of ``docs/security.md``, which
``python -m controller.limits`` prints (a test compares the two).

Pure: no I/O, imported by the models, the providers, the engine and the operator.

>>> truncate("x" * 50, 30)
'xxxxxxxx… [truncated 42 chars]'
"""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    """One bound: ``name`` is what errors quote, ``value`` what the code compares with."""

    name: str
    value: float
    unit: str  # "s", "bytes", "chars", "count"
    what: str
    when_hit: str

    @property
    def int(self) -> int:
        return int(self.value)

    def shown(self) -> str:
        """The value as a person reads it: ``60 s``, ``2 MiB``, ``1024 chars``."""
        if self.unit == "bytes":
            for size, suffix in ((1 << 20, "MiB"), (1 << 10, "KiB")):
                if self.value >= size and self.value % size == 0:
                    return f"{int(self.value // size)} {suffix}"
            return f"{int(self.value)} bytes"
        if self.unit == "count":
            return f"{int(self.value)}"
        if self.unit == "s" and self.value >= 86400 and self.value % 86400 == 0:
            return f"{int(self.value // 86400)} days"
        return f"{self.value:g} {self.unit}"

    def __str__(self) -> str:
        return f"limit {self.name}: {self.shown()}"


MEASUREMENT_DEADLINE = Limit(
    "measurementDeadline",
    60.0,
    "s",
    "One measurement of one metric, every Prometheus request of it included (the canary "
    "and stable queries, an alert rule's presence queries, retries): at most the metric's "
    "interval and the controller's retry budget (10 s), and never more than this",
    "the measurement is Inconclusive (an Error counted as missing data), the analysis "
    "goes on at the next interval",
)
PASS_MEASURING = Limit(
    "passMeasuring",
    60.0,
    "s",
    "Time one reconcile pass of one Rollout may spend starting measurements; the metrics "
    "still due wait for the next pass (the longest-waiting first), so a worker returns "
    "to the queue",
    "nothing visible: the next pass follows at once, after the other Rollouts queued",
)
PROMETHEUS_BODY = Limit(
    "prometheusBody",
    2 * 1024 * 1024,
    "bytes",
    "Size of a Prometheus answer after decompression; the body is streamed, and gzip or "
    "deflate is inflated in small steps that stop at this size",
    "the measurement is an Error naming the limit (aggregate the query, e.g. sum by ...)",
)
RANGE_BODY = Limit(
    "prometheusRangeBody",
    32 * 1024 * 1024,
    "bytes",
    "The same for range queries of `deployctl analyze` (run by a person, not the controller)",
    "the backtest fails naming the limit",
)
RULES_FILE = Limit(
    "alertRulesFile",
    512 * 1024,
    "bytes",
    "Size of an alert rules file read from a ConfigMap",
    "the alertRules metric is an Error naming the ConfigMap and the limit",
)
RULES_PER_FILE = Limit(
    "alertRulesPerFile",
    1000,
    "count",
    "Rules (alerting and recording) in one rules file",
    "the alertRules metric is an Error naming the limit",
)
RULES_PER_METRIC = Limit(
    "alertRulesPerMetric",
    32,
    "count",
    "Alerting rules one alertRules metric expands to (each is queried every interval)",
    "the metric is an Error: name the rules to use with alertRules.rules",
)
RULE_EXPRESSION = Limit(
    "alertRuleExpression",
    8192,
    "chars",
    "Length of one rule's expression (the same as a query of a prometheus metric)",
    "the metric is an Error naming the rule",
)
YAML_ALIASES = Limit(
    "yamlAliases",
    0,
    "count",
    "YAML aliases (`*name`) in an alert rules file: refused, because a few KiB of "
    "aliases expand to millions of rules",
    "the metric is an Error naming the line of the first alias",
)
STATUS_MESSAGE = Limit(
    "statusMessage",
    1024,
    "chars",
    "Every message the controller writes: Rollout status (conditions, analysis runs, "
    "history), Events and notification texts; longer text is cut with a marker",
    "the text ends with `… [truncated N chars]`",
)
MEASUREMENT_MESSAGE = Limit(
    "measurementMessage",
    512,
    "chars",
    "The evidence kept with each of a metric's last measurements in status",
    "the text ends with `… [truncated N chars]`",
)
FREEZE_CHAIN = Limit(
    "freezeChain",
    64,
    "count",
    "Freezes followed one after another (one ending inside the next) to find when a "
    "new revision may start",
    "the message says `frozen until at least ...`; the controller looks again within a minute",
)
FREEZE_HORIZON = Limit(
    "freezeHorizon",
    400 * 86400,
    "s",
    "How far ahead chained freezes are followed",
    "the message says `frozen until at least ...`",
)
WORKER_STUCK = Limit(
    "workerStuck",
    300.0,
    "s",
    "One reconcile pass of one Rollout; the budgets above keep a pass far shorter, so a "
    "pass this long means a wedged worker",
    "`/healthz` fails (`[-]workers failed`) and the kubelet restarts the controller; "
    "the standby takes over",
)
NOTIFICATION_DELIVERY = Limit(
    "notificationDelivery",
    60.0,
    "s",
    "One notification to one webhook, every attempt and backoff included",
    "the delivery stops and is logged as failed (`notification failed`, the limit named)",
)
NOTIFICATIONS_PENDING = Limit(
    "notificationsPerNamespace",
    32,
    "count",
    "Notifications waiting per namespace; namespaces are served in turn, so one "
    "namespace's slow webhook delays only its own",
    "the newest notification of that namespace is dropped and logged",
)

ALL: tuple[Limit, ...] = (
    MEASUREMENT_DEADLINE,
    PASS_MEASURING,
    PROMETHEUS_BODY,
    RANGE_BODY,
    RULES_FILE,
    RULES_PER_FILE,
    RULES_PER_METRIC,
    RULE_EXPRESSION,
    YAML_ALIASES,
    STATUS_MESSAGE,
    MEASUREMENT_MESSAGE,
    FREEZE_CHAIN,
    FREEZE_HORIZON,
    WORKER_STUCK,
    NOTIFICATION_DELIVERY,
    NOTIFICATIONS_PENDING,
)


def truncate(text: str, limit: int = STATUS_MESSAGE.int) -> str:
    """``text`` cut to at most ``limit`` characters, ending with a marker saying how
    much was cut; unchanged when it fits."""
    if len(text) <= limit:
        return text
    # The marker is sized for the whole length, so the result never exceeds ``limit``.
    keep = max(0, limit - len(f"… [truncated {len(text)} chars]"))
    return f"{text[:keep]}… [truncated {len(text) - keep} chars]"


def markdown_table() -> str:
    """The limits table of ``docs/security.md``."""
    lines = [
        "| limit | value | what it bounds | when it is hit |",
        "| --- | --- | --- | --- |",
    ]
    for limit in ALL:
        lines.append(f"| `{limit.name}` | {limit.shown()} | {limit.what} | {limit.when_hit} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown_table())
