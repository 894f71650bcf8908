"""The AnalysisTemplate resource: reusable metric checks whose thresholds are data.

A metric is measured every ``interval``; each measurement is judged against
``threshold`` (``min``/``max``, or relative to the stable revision). ``failureLimit``
and ``inconclusiveLimit`` say how many bad measurements are tolerated, as in Argo
Rollouts; ``onProviderError`` says what a provider that does not answer does (pause the
rollout until it answers, the default, or abort past ``consecutiveErrorLimit``). There
is no expression language to evaluate: conditions are numbers.

The ``errorRate`` and ``latency`` presets write the PromQL for the conventional metric
names (``http_requests_total``, ``http_request_duration_seconds``) so most users never
type a query; their defaults match the usual HighErrorRate (5xx ratio above 5% for 2m)
and SlowResponses (p90 above 2 s for 5m) alerting rules.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from controller.api.common import (
    ApiModel,
    Arg,
    CelRule,
    ObjectMeta,
    ObjectName,
    SecretKeyRef,
    cel,
    exactly_one,
)
from controller.api.duration import Duration, DurationError, format_duration, parse_duration
from controller.api.rollout import JobProvider

Query = Annotated[str, Field(min_length=1, max_length=8192)]
MAX_WEB_SECONDS = 60.0
"""The longest a web check may take, retries included (``controller.analysis.web``)."""

# A whole value that is one argument, as Argo Rollouts allows for count, interval and the
# limits: `count: "{{args.count}}"`. Filled in when the analysis starts (Metric.bind).
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}")
CONTEXT_PLACEHOLDERS = frozenset(
    {"canary.hash", "stable.hash", "rollout.name", "rollout.namespace"}
)
ARG_PLACEHOLDER = re.compile(r"^\{\{\s*args\.([A-Za-z_][A-Za-z0-9_-]*)\s*\}\}$")


def arg_placeholder(value: object) -> str | None:
    """The argument name when ``value`` is exactly one ``{{args.NAME}}``, else None."""
    if isinstance(value, str):
        match = ARG_PLACEHOLDER.match(value.strip())
        if match:
            return match.group(1)
    return None


class _TemplatedDuration:
    """A Duration, or an ``{{args.NAME}}`` placeholder kept as written until bound."""

    @classmethod
    def __get_pydantic_core_schema__(
        cls, _source: Any, _handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        def validate(value: object) -> float | str:
            if arg_placeholder(value) is not None:
                return str(value).strip()
            try:
                return parse_duration(value)
            except DurationError as exc:
                raise ValueError(f"{exc}, or an {{{{args.NAME}}}} placeholder") from None

        def serialize(value: float | str) -> str:
            return value if isinstance(value, str) else format_duration(value)

        return core_schema.no_info_plain_validator_function(
            validate,
            serialization=core_schema.plain_serializer_function_ser_schema(
                serialize, when_used="json"
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, _schema: core_schema.CoreSchema, _handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "x-kubernetes-int-or-string": True,
            "description": "Duration (30s, 2m, 1h or seconds), or an {{args.NAME}} placeholder.",
        }


class _TemplatedInt:
    """An integer within bounds, or an ``{{args.NAME}}`` placeholder kept until bound."""

    def __init__(self, low: int, high: int) -> None:
        self.low = low
        self.high = high

    def check(self, value: object) -> int | str:
        if arg_placeholder(value) is not None:
            return str(value).strip()
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and value.strip().isdigit():
            number = int(value.strip())  # int-or-string, as Argo Rollouts' schema
        if number is None or not self.low <= number <= self.high:
            raise ValueError(
                f"must be a whole number from {self.low} to {self.high}, or an "
                f"{{{{args.NAME}}}} placeholder (got {json.dumps(value, default=str)})"
            )
        return number

    def __get_pydantic_core_schema__(
        self, _source: Any, _handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(self.check)

    def __get_pydantic_json_schema__(
        self, _schema: core_schema.CoreSchema, _handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "x-kubernetes-int-or-string": True,
            "description": f"{self.low}..{self.high}, or an {{{{args.NAME}}}} placeholder.",
        }


TemplatedDuration = Annotated[float | str, _TemplatedDuration]
TEMPLATED_FIELDS = (
    "interval",
    "initial_delay",
    "count",
    "failure_limit",
    "inconclusive_limit",
    "consecutive_error_limit",
)
Limit = Annotated[int | str, _TemplatedInt(0, 1000)]


class PrometheusProvider(ApiModel):
    """Where to ask and what: ``address`` defaults to the controller's --prometheus-url."""

    address: Annotated[str, Field(pattern=r"^https?://[^\s]+$", max_length=2048)] | None = None
    query: Query
    timeout: Duration = 10.0


class HeaderSource(ApiModel):
    secret_key_ref: SecretKeyRef


class WebHeader(ApiModel):
    """A request header; its value given, or read from a Secret in the Rollout's namespace."""

    model_config = cel(exactly_one(("value", "valueFrom"), "set exactly one of value, valueFrom"))

    name: Annotated[str, Field(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")]
    value: Annotated[str, Field(max_length=8192)] | None = None
    value_from: HeaderSource | None = None

    @model_validator(mode="after")
    def _one_value(self) -> WebHeader:
        if (self.value is None) == (self.value_from is None):
            raise ValueError(f"header {self.name}: set exactly one of value, valueFrom")
        if self.value is not None and any(c in self.value for c in "\r\n"):
            raise ValueError(f"header {self.name}: the value must be one line")
        return self


_JSON_PATH_STEP = re.compile(r"\.?([^.\[\]'\"\s{}$@*?]+)|\[(\d+)\]|\['([^']+)'\]|\[\"([^\"]+)\"\]")


def json_path_steps(path: str) -> list[str | int]:
    """The keys and indexes of a web check's ``jsonPath``; ValueError saying what is wrong.

    Accepted: ``$.status``, ``checks[0].healthy``, ``data['the key']`` and Argo Rollouts'
    kubectl-style ``{$.data.ok}`` (the braces are dropped). Wildcards and filters are not.

    >>> json_path_steps("{$.checks[0].ok}")
    ['checks', 0, 'ok']
    """
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if text.startswith("$"):
        text = text[1:]
    steps: list[str | int] = []
    position = 0
    for match in _JSON_PATH_STEP.finditer(text):
        if match.start() != position:
            break
        key = match.group(1) or match.group(3) or match.group(4)
        steps.append(key if key is not None else int(match.group(2)))
        position = match.end()
    if position != len(text) or not steps:
        rest = text[position:] or text
        hint = (
            "; wildcards and filters ([*], [?(...)], ..) are not supported"
            if any(c in rest for c in "*?@") or ".." in rest
            else ""
        )
        raise ValueError(
            f"jsonPath {path!r} is not a path deployctl can follow at {rest!r}: use keys and "
            f"list indexes such as $.data.ok or {{$.checks[0].healthy}}{hint}"
        )
    return steps


class WebProvider(ApiModel):
    """An HTTP check: GET/POST to a URL or to a Service, judged on the status code and,
    optionally, on a value in the JSON reply (``jsonPath`` with ``equals`` or the
    metric's threshold)."""

    model_config = cel(
        exactly_one(("url", "service"), "web: set exactly one of url, service"),
        CelRule(
            "!has(self.body) || (has(self.method) && self.method == 'POST')",
            "web: a body needs method: POST",
            field_path=".body",
        ),
        CelRule(
            "!has(self.equals) || has(self.jsonPath)",
            "web: equals needs jsonPath",
            field_path=".equals",
        ),
    )

    url: Annotated[str, Field(min_length=1, max_length=2048)] | None = Field(
        default=None,
        description="http(s) URL; {{args.NAME}} placeholders are percent-encoded when filled",
    )
    service: ObjectName | None = Field(
        default=None, description="A Service in the Rollout's namespace, e.g. the canaryService"
    )
    port: Annotated[int, Field(ge=1, le=65_535)] = 80
    path: Annotated[str, Field(pattern=r"^/[^\s]*$", max_length=2048)] = "/"
    method: Literal["GET", "POST"] = "GET"
    headers: Annotated[list[WebHeader], Field(max_length=32)] = Field(default_factory=list)
    body: Annotated[str, Field(max_length=65_536)] | None = None
    timeout: Duration = 10.0
    success_codes: Annotated[list[Annotated[int, Field(ge=100, le=599)]], Field(max_length=32)] = (
        Field(default_factory=list, description="Default: any 2xx")
    )
    json_path: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    equals: Annotated[str, Field(max_length=1024)] | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        if url is None or PLACEHOLDER.match(url.strip()):
            # The URL, or its base, is an argument: checked once filled in.
            return url
        if not re.match(r"^https?://[^\s]+$", PLACEHOLDER.sub("x", url)):
            raise ValueError(
                f"url {url!r} must be an http:// or https:// URL without spaces "
                "({{args.NAME}} placeholders allowed)"
            )
        return url

    @model_validator(mode="after")
    def _check(self) -> WebProvider:
        if (self.url is None) == (self.service is None):
            raise ValueError("web: set exactly one of url, service")
        if self.url is not None and (self.path != "/" or "port" in self.model_fields_set):
            raise ValueError("web: port and path go with service; put them in the url")
        if self.body is not None and self.method != "POST":
            raise ValueError("web: a body needs method: POST")
        if self.equals is not None and self.json_path is None:
            raise ValueError("web: equals needs jsonPath")
        if self.json_path is not None:
            json_path_steps(self.json_path)
        if not 0 < self.timeout <= MAX_WEB_SECONDS:
            raise ValueError(
                f"web: timeout must be more than 0s and at most {MAX_WEB_SECONDS:g}s: one "
                "check must not hold a controller worker longer (the metric's interval "
                "bounds it too)"
            )
        return self


class Provider(ApiModel):
    """Where a measurement comes from: exactly one of prometheus, job, web."""

    model_config = cel(
        exactly_one(
            ("prometheus", "job", "web"), "set exactly one provider: prometheus, job or web"
        )
    )

    prometheus: PrometheusProvider | None = None
    job: JobProvider | None = None
    web: WebProvider | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Provider:
        given = [n for n in ("prometheus", "job", "web") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                "set exactly one provider: prometheus, job or web"
                + (f" (found {', '.join(given)})" if given else "")
            )
        return self


class Threshold(ApiModel):
    """Bounds a measurement must stay within. Absolute (min/max) or relative to stable."""

    model_config = cel(
        CelRule(
            "!has(self.min) || !has(self.max) || self.min <= self.max",
            "min must not be greater than max",
        ),
        CelRule(
            "has(self.min) || has(self.max) || has(self.maxIncrease) || has(self.maxRatio)",
            "set at least one of min, max, maxIncrease, maxRatio",
        ),
    )

    min: float | None = None
    max: float | None = None
    max_increase: float | None = Field(
        default=None, description="relativeTo stable: canary may exceed stable by at most this"
    )
    max_ratio: float | None = Field(
        default=None, gt=0, description="relativeTo stable: canary/stable may be at most this"
    )

    @model_validator(mode="after")
    def _check(self) -> Threshold:
        for name in ("min", "max", "max_increase", "max_ratio"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) must not be greater than max ({self.max})")
        if all(getattr(self, n) is None for n in ("min", "max", "max_increase", "max_ratio")):
            raise ValueError("set at least one of min, max, maxIncrease, maxRatio")
        return self


class ErrorRatePreset(ApiModel):
    """5xx share of requests for the revision under test (HighErrorRate)."""

    max: Annotated[float, Field(ge=0, le=1)] = 0.05
    requests_metric: Annotated[str, Field(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")] = (
        "http_requests_total"
    )
    error_codes: Annotated[str, Field(max_length=64)] = "5.."
    code_label: Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")] = "code"
    revision_label: Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")] = "revision"
    namespace_label: Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")] = "namespace"
    window: Duration = 60.0
    min_requests: Annotated[int, Field(ge=0, le=1_000_000)] = Field(
        default=20,
        description="Requests the window must hold before its ratio is judged; fewer is "
        "no data (a ratio over a handful of requests is noise, in both directions)",
    )


class LatencyPreset(ApiModel):
    """A quantile of request latency from a histogram (SlowResponses), in seconds."""

    quantile: Annotated[float, Field(gt=0, lt=1)] = 0.9
    max: Duration = 2.0
    histogram_metric: Annotated[str, Field(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")] = (
        "http_request_duration_seconds"
    )
    revision_label: Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")] = "revision"
    namespace_label: Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")] = "namespace"
    window: Duration = 60.0
    min_requests: Annotated[int, Field(ge=0, le=1_000_000)] = Field(
        default=20,
        description="Requests (histogram observations) the window must hold before its "
        "quantile is judged; fewer is no data",
    )


class SloPreset(ApiModel):
    """Error-budget burn-rate gate (``controller.analysis.burnrate``): the canary's error ratio,
    over the SRE workbook's pairs of windows (scaled down to the step), divided by the
    budget ``1 - objective/100``; fails when a pair both burn faster than its factor
    (14.4x over 1h and 5m, 6x over 6h and 30m)."""

    objective: float = Field(description="The SLO in percent, e.g. 99.9")
    window: Duration = Field(default=30 * 86400.0, description="The SLO window (30d)")
    error_rate: ErrorRatePreset | None = Field(
        default=None,
        description="The canary's 5xx share, with these metric and label names (default)",
    )
    error_query: Query | None = Field(
        default=None,
        description="PromQL of the canary's error ratio (0..1) over {{slo.window}}, "
        'e.g. sum(rate(errors{revision="{{canary.hash}}"}[{{slo.window}}])) / ...',
    )
    step: Duration | None = Field(
        default=None,
        description="Scale the windows down to this (the step's length); default: "
        "the workbook's windows",
    )
    min_window: Duration = Field(default=60.0, description="The shortest window used")

    @model_validator(mode="after")
    def _check(self) -> SloPreset:
        if not 0 < self.objective < 100:
            raise ValueError(
                f"slo: objective is a percentage above 0 and below 100 (got {self.objective})"
            )
        if self.error_rate is not None and self.error_query is not None:
            raise ValueError("slo: set at most one of errorRate, errorQuery")
        if self.error_query is not None and "{{slo.window}}" not in self.error_query.replace(
            " ", ""
        ):
            raise ValueError("slo: errorQuery must use {{slo.window}} as its range")
        return self

    @property
    def errors(self) -> ErrorRatePreset:
        """The errorRate preset the ratio is written with (the default one if unset)."""
        return self.error_rate or ErrorRatePreset()


class AlertRulesSource(ApiModel):
    """Alerting rules from a standard Prometheus rules file kept in a ConfigMap, each
    judged for the revision under test only, with the rule's own ``for``."""

    config_map: ObjectName
    key: (
        Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")] | None
    ) = Field(default=None, description="The file in the ConfigMap; default: its only key")
    rules: Annotated[
        list[Annotated[str, Field(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")]], Field(max_length=32)
    ] = Field(default_factory=list, description="Alert names; default: every alerting rule")
    revision_label: Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")] = "revision"
    namespace_label: Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")] = "namespace"


class Compare(ApiModel):
    """Judge the canary against a comparison revision with a rank test, on the samples
    of the step (``controller.analysis.compare``): fail only on a difference that is both
    significant at ``confidence`` in the harmful ``direction`` and larger than
    ``tolerance``; fewer than ``minSamples`` on either side is Inconclusive."""

    against: Literal["baseline", "stable"] = Field(
        default="stable",
        description="stable: the long-running stable pods; baseline: fresh pods of the "
        "stable revision beside the canary (needs canary.baseline.enabled)",
    )
    test: Literal["mannWhitney"] = "mannWhitney"
    direction: Literal["increase", "decrease", "either"] = Field(
        default="increase",
        description="Which change is harmful: increase (latency, errors), decrease "
        "(throughput, success), either",
    )
    confidence: float = Field(
        default=0.98,
        description="1 - the false-alarm rate accepted per judgement: the test must be "
        "significant at this level to fail",
    )
    tolerance: float = Field(
        default=0.25,
        description="Relative difference of the medians tolerated even when significant "
        "(0.25: the canary may be 25% worse)",
    )
    min_samples: Annotated[int, Field(ge=5, le=100_000)] = Field(
        default=50, description="Samples each side needs before it is judged"
    )
    weight: Annotated[float, Field(gt=0, le=1000)] = Field(
        default=1.0,
        description="This metric's weight in the template's score (spec.score), when it has one",
    )

    @model_validator(mode="after")
    def _check(self) -> Compare:
        if not 0.5 <= self.confidence < 1:
            raise ValueError(
                f"compare: confidence must be at least 0.5 and below 1 (got {self.confidence}); "
                "0.95-0.99 is usual"
            )
        if not (math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise ValueError(
                f"compare: tolerance must be a finite number >= 0 (got {self.tolerance}); "
                "0.25 tolerates a 25% difference of the medians"
            )
        # With n samples a side, the rank test's smallest possible p-value is
        # 1 / C(2n, n) one-sided (twice that two-sided): below it, nothing can fail.
        # Past 40 a side it is below 1e-22, far below any confidence allowed.
        sides = 2 if self.direction == "either" else 1
        smallest = sides / math.comb(2 * min(self.min_samples, 40), min(self.min_samples, 40))
        if smallest >= 1 - self.confidence:
            raise ValueError(
                f"compare: with minSamples {self.min_samples} the test can never reach "
                f"confidence {self.confidence} (smallest p-value {smallest:.3g}); "
                "raise minSamples or lower confidence"
            )
        return self


class Metric(ApiModel):
    """One check: a provider (or a preset), a threshold and the limits that decide.

    ``interval``, ``initialDelay``, ``count`` and the limits may each be one
    ``{{args.NAME}}`` placeholder (as in Argo Rollouts); ``bind`` fills them when the
    analysis starts, and the ``*_seconds``/``*_value`` properties read the bound values.
    """

    model_config = cel(
        exactly_one(
            ("provider", "errorRate", "latency", "alertRules", "slo"),
            "set exactly one of provider, errorRate, latency, alertRules, slo",
        ),
        CelRule(
            # `for` is a CEL keyword: the apiserver exposes the field as __for__.
            "!has(self.alertRules) || !(has(self.threshold) || has(self.relativeTo)"
            " || has(self.__for__))",
            "alertRules are judged by each rule's own expression and for; "
            "drop threshold, relativeTo and for",
        ),
        CelRule(
            "!has(self.threshold) || has(self.relativeTo)"
            " || !(has(self.threshold.maxIncrease) || has(self.threshold.maxRatio))",
            "maxIncrease/maxRatio need relativeTo: stable",
            field_path=".threshold",
        ),
    )

    name: ObjectName
    interval: TemplatedDuration = 30.0
    initial_delay: TemplatedDuration = 0.0
    count: Annotated[int | str, _TemplatedInt(0, 10_000)] | None = Field(
        default=None,
        description="Measurements to take; unset or 0: as long as the step runs",
    )
    failure_limit: Limit = 0
    inconclusive_limit: Limit = 0
    consecutive_error_limit: Limit = Field(
        default=4,
        description="With onProviderError: abort, provider errors in a row tolerated "
        "before the metric is Error (and the rollout aborts)",
    )
    on_provider_error: Literal["pause", "abort"] = Field(
        default="pause",
        description="When the provider does not answer (connection refused, timeout, 5xx): "
        "pause the rollout and measure again at each interval until it answers (pause), "
        "or count the errors towards consecutiveErrorLimit and abort past it (abort)",
    )
    for_: Duration | None = Field(
        default=None,
        alias="for",
        description="A breach must hold this long before it counts (like an alert's for)",
    )
    relative_to: Literal["stable"] | None = None
    threshold: Threshold | None = None
    compare: Compare | None = None
    provider: Provider | None = None
    error_rate: ErrorRatePreset | None = None
    latency: LatencyPreset | None = None
    alert_rules: AlertRulesSource | None = None
    slo: SloPreset | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Metric:
        names = ("provider", "errorRate", "latency", "alertRules", "slo")
        sources = [n for n in names if self._source(n) is not None]
        if len(sources) != 1:
            raise ValueError(
                "set exactly one of provider, errorRate, latency, alertRules, slo"
                + (f" (found {', '.join(sources)})" if sources else "")
            )
        if self.slo is not None and (
            self.compare is not None or self.relative_to is not None or self.threshold is not None
        ):
            raise ValueError(
                "slo is judged by its burn-rate rules; drop threshold, relativeTo and compare"
            )
        if self.compare is not None:
            if self.alert_rules is not None or self.job is not None or self.web is not None:
                raise ValueError(
                    "compare judges samples from Prometheus: use it with a prometheus "
                    "provider, errorRate or latency"
                )
            if self.relative_to is not None:
                raise ValueError(
                    "compare judges against its own comparison (compare.against); drop relativeTo"
                )
        if self.alert_rules is not None:
            if self.threshold is not None or self.relative_to is not None or self.for_ is not None:
                raise ValueError(
                    "alertRules are judged by each rule's own expression and for; "
                    "drop threshold, relativeTo and for"
                )
        elif self.provider is not None and self.provider.job is not None:
            if self.threshold is not None or self.relative_to is not None:
                raise ValueError("a job metric is judged by the Job's outcome; drop threshold")
        elif self.provider is not None and self.provider.web is not None:
            web = self.provider.web
            if self.relative_to is not None:
                raise ValueError("a web metric cannot be relativeTo stable")
            if web.equals is not None and self.threshold is not None:
                raise ValueError("web: use either equals or a threshold, not both")
            if web.json_path is not None and web.equals is None and self.threshold is None:
                raise ValueError("web: jsonPath needs equals or a threshold (min/max)")
            if web.json_path is None and self.threshold is not None:
                raise ValueError("web: a threshold needs jsonPath (the value to compare)")
        elif self.provider is not None and self.threshold is None and self.compare is None:
            # With compare the rank test decides; a threshold, when given, also applies.
            raise ValueError(
                "a prometheus metric needs a threshold (min and/or max) or a compare block"
            )
        if self.threshold is not None and self.relative_to is None:
            if self.threshold.max_increase is not None or self.threshold.max_ratio is not None:
                raise ValueError("maxIncrease/maxRatio need relativeTo: stable")
        if not isinstance(self.interval, str) and self.interval < 1:
            raise ValueError("interval must be at least 1s")
        return self

    def placeholders(self) -> dict[str, str]:
        """``{field alias: arg name}`` of the fields given as ``{{args.NAME}}``."""
        out = {}
        for name in TEMPLATED_FIELDS:
            arg = arg_placeholder(getattr(self, name))
            if arg is not None:
                out[type(self).model_fields[name].alias or name] = arg
        return out

    def bind(self, args: Mapping[str, str]) -> Metric:
        """This metric with its placeholder fields filled from ``args`` and checked as if
        written so; ValueError naming the field and the argument otherwise."""
        found = self.placeholders()
        if not found:
            return self
        data = self.model_dump(by_alias=True, exclude_unset=True)
        for alias, arg in found.items():
            if arg not in args:
                raise ValueError(f"{self.name}: {alias} needs argument {arg!r}, which has no value")
            data[alias] = args[arg]
            if arg_placeholder(args[arg]) is not None:
                raise ValueError(f"{self.name}: {alias}: argument {arg!r} is itself a placeholder")
        try:
            return Metric.model_validate(data)
        except ValidationError as exc:
            details = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'metric'}: "
                + str(e["msg"]).removeprefix("Value error, ")
                for e in exc.errors(include_url=False)
            )
            raise ValueError(f"{self.name}: with its arguments filled in: {details}") from None

    def _bound(self, name: str) -> Any:
        value = getattr(self, name)
        if isinstance(value, str):
            raise ValueError(f"metric {self.name}: {name} is still {value!r} (not bound)")
        return value

    @property
    def interval_seconds(self) -> float:
        return float(self._bound("interval"))

    @property
    def initial_delay_seconds(self) -> float:
        return float(self._bound("initial_delay"))

    @property
    def failure_limit_value(self) -> int:
        return int(self._bound("failure_limit"))

    @property
    def inconclusive_limit_value(self) -> int:
        return int(self._bound("inconclusive_limit"))

    @property
    def consecutive_error_limit_value(self) -> int:
        return int(self._bound("consecutive_error_limit"))

    def _source(self, name: str) -> object:
        return {
            "provider": self.provider,
            "errorRate": self.error_rate,
            "latency": self.latency,
            "alertRules": self.alert_rules,
            "slo": self.slo,
        }[name]

    @property
    def job(self) -> JobProvider | None:
        return self.provider.job if self.provider is not None else None

    @property
    def web(self) -> WebProvider | None:
        return self.provider.web if self.provider is not None else None

    @property
    def effective_count(self) -> int | None:
        """``count``; a job metric runs once unless told otherwise (a smoke test, a check)."""
        if self.count is None and self.job is not None:
            return 1
        count = None if self.count is None else int(self._bound("count"))
        return count or None  # 0: no limit, as in Argo Rollouts

    @property
    def effective_for(self) -> float:
        """The breach window: the metric's own ``for``, else the preset's rule default."""
        if self.for_ is not None:
            return self.for_
        if self.error_rate is not None:
            return 120.0
        if self.latency is not None:
            return 300.0
        return 0.0


class Score(ApiModel):
    """Kayenta's scoring of a canary: the compare metrics' weights (``compare.weight``)
    of those that passed, in percent of all of them (``controller.analysis.score``).
    At or above ``pass`` the step passes, below ``marginal`` it fails (a roll back);
    in between is marginal: the step is extended once (its compare metrics measure
    again, on the longer window), then a person decides (the rollout pauses)."""

    pass_: Annotated[float, Field(gt=0, le=100, alias="pass")] = Field(
        default=95.0, description="Score (0-100) at or above which the step passes"
    )
    marginal: Annotated[float, Field(ge=0, le=100)] = Field(
        default=75.0, description="Score below which the step fails"
    )

    @model_validator(mode="after")
    def _check(self) -> Score:
        if self.marginal > self.pass_:
            raise ValueError(
                f"score: marginal {self.marginal} is above pass {self.pass_}; "
                "marginal must be at most pass"
            )
        return self


class AnalysisTemplateSpec(ApiModel):
    args: list[Arg] = Field(default_factory=list, max_length=64)
    metrics: Annotated[list[Metric], Field(min_length=1, max_length=64)]
    score: Score | None = Field(
        default=None,
        description="Decide the compare metrics together by a weighted score instead of "
        "each on its own",
    )

    @model_validator(mode="after")
    def _unique(self) -> AnalysisTemplateSpec:
        names = [m.name for m in self.metrics]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"metric names must be unique; repeated: {', '.join(dupes)}")
        arg_names = [a.name for a in self.args]
        dupes = sorted({n for n in arg_names if arg_names.count(n) > 1})
        if dupes:
            raise ValueError(f"arg names must be unique; repeated: {', '.join(dupes)}")
        if self.score is not None and not any(m.compare is not None for m in self.metrics):
            raise ValueError("score weighs the compare metrics; this template has none")
        known = CONTEXT_PLACEHOLDERS | {f"args.{name}" for name in arg_names}
        for metric in self.metrics:
            slo_window = {"slo.window"} if metric.slo is not None else set()
            for name in _placeholders_in(metric.model_dump(mode="json", by_alias=True)):
                if name not in known | slo_window:
                    declared = ", ".join(arg_names) or "none"
                    raise ValueError(
                        f"metric {metric.name}: unknown placeholder {{{{{name}}}}}; declared "
                        f"args: {declared}; always known: "
                        + ", ".join(sorted(CONTEXT_PLACEHOLDERS))
                    )
        return self


def _placeholders_in(value: object) -> list[str]:
    """Every placeholder name in the strings of a JSON value, in order."""
    if isinstance(value, str):
        return [m.group(1) for m in PLACEHOLDER.finditer(value)]
    if isinstance(value, dict):
        return [name for item in value.values() for name in _placeholders_in(item)]
    if isinstance(value, list):
        return [name for item in value for name in _placeholders_in(item)]
    return []


class AnalysisTemplate(ApiModel):
    api_version: Literal["deployctl.io/v1alpha1"] = "deployctl.io/v1alpha1"
    kind: Literal["AnalysisTemplate"] = "AnalysisTemplate"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: AnalysisTemplateSpec
