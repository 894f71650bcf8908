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

import math
from typing import Annotated, Literal

from pydantic import Field, model_validator

from controller.api.common import ApiModel, Arg, ObjectMeta, ObjectName
from controller.api.duration import Duration
from controller.api.rollout import JobProvider

Query = Annotated[str, Field(min_length=1, max_length=8192)]
MAX_WEB_SECONDS = 60.0
"""The longest a web check may take, retries included (``controller.analysis.web``)."""


class PrometheusProvider(ApiModel):
    """Where to ask and what: ``address`` defaults to the controller's --prometheus-url."""

    address: Annotated[str, Field(pattern=r"^https?://[^\s]+$", max_length=2048)] | None = None
    query: Query
    timeout: Duration = 10.0


class SecretKeyRef(ApiModel):
    name: ObjectName
    key: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]


class HeaderSource(ApiModel):
    secret_key_ref: SecretKeyRef


class WebHeader(ApiModel):
    """A request header; its value given, or read from a Secret in the Rollout's namespace."""

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


class WebProvider(ApiModel):
    """An HTTP check: GET/POST to a URL or to a Service, judged on the status code and,
    optionally, on a value in the JSON reply (``jsonPath`` with ``equals`` or the
    metric's threshold)."""

    url: Annotated[str, Field(pattern=r"^https?://[^\s]+$", max_length=2048)] | None = None
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
        if not 0 < self.timeout <= MAX_WEB_SECONDS:
            raise ValueError(
                f"web: timeout must be more than 0s and at most {MAX_WEB_SECONDS:g}s: one "
                "check must not hold a controller worker longer (the metric's interval "
                "bounds it too)"
            )
        return self


class Provider(ApiModel):
    """Where a measurement comes from: exactly one of prometheus, job, web."""

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


class Metric(ApiModel):
    """One check: a provider (or a preset), a threshold and the limits that decide."""

    name: ObjectName
    interval: Duration = 30.0
    initial_delay: Duration = 0.0
    count: Annotated[int, Field(ge=1, le=10_000)] | None = Field(
        default=None, description="Measurements to take; unset: as long as the step runs"
    )
    failure_limit: Annotated[int, Field(ge=0, le=1000)] = 0
    inconclusive_limit: Annotated[int, Field(ge=0, le=1000)] = 0
    consecutive_error_limit: Annotated[int, Field(ge=0, le=1000)] = Field(
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
    provider: Provider | None = None
    error_rate: ErrorRatePreset | None = None
    latency: LatencyPreset | None = None
    alert_rules: AlertRulesSource | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Metric:
        names = ("provider", "errorRate", "latency", "alertRules")
        sources = [n for n in names if self._source(n) is not None]
        if len(sources) != 1:
            raise ValueError(
                "set exactly one of provider, errorRate, latency, alertRules"
                + (f" (found {', '.join(sources)})" if sources else "")
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
        elif self.provider is not None and self.threshold is None:
            raise ValueError("a prometheus metric needs a threshold (min and/or max)")
        if self.threshold is not None and self.relative_to is None:
            if self.threshold.max_increase is not None or self.threshold.max_ratio is not None:
                raise ValueError("maxIncrease/maxRatio need relativeTo: stable")
        if self.interval < 1:
            raise ValueError("interval must be at least 1s")
        return self

    def _source(self, name: str) -> object:
        return {
            "provider": self.provider,
            "errorRate": self.error_rate,
            "latency": self.latency,
            "alertRules": self.alert_rules,
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
        return self.count

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


class AnalysisTemplateSpec(ApiModel):
    args: list[Arg] = Field(default_factory=list, max_length=64)
    metrics: Annotated[list[Metric], Field(min_length=1, max_length=64)]

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
        return self


class AnalysisTemplate(ApiModel):
    api_version: Literal["deployctl.io/v1alpha1"] = "deployctl.io/v1alpha1"
    kind: Literal["AnalysisTemplate"] = "AnalysisTemplate"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: AnalysisTemplateSpec
