"""Every Argo Rollouts field we know, and what deployctl does with it.

One table, three users: ``deployctl validate`` (an unknown field that is an Argo field is
reported as "renamed", "converted" or "not supported ... (Argo Rollouts feature X)"
instead of "check the spelling"), ``deployctl convert`` (what it rewrites, drops, or
reports as not converted) and docs/argo.md (generated from ``TABLE`` by
``markdown_table``; a test keeps them equal).

Paths are written as in an Argo manifest, with ``[]`` for any list item, and
``<analysis>`` standing for each place an analysis is referenced
(``spec.strategy.canary.steps[].analysis``, ``spec.strategy.canary.analysis``,
``spec.strategy.blueGreen.prePromotionAnalysis``, ``...postPromotionAnalysis``). A row
covers its field and everything under it, unless a longer row says otherwise.

What each status means:

- ``same``: the same field with the same meaning; kept as is.
- ``renamed``: the same meaning under another name; ``convert`` renames it, ``validate``
  names the new spelling.
- ``converted``: the same intent in another shape (a condition as a threshold, background
  analysis at ``spec.analysis``); ``convert`` rewrites it.
- ``dropped``: nothing to do in deployctl (it keeps no AnalysisRun objects, it always
  aborts at the progress deadline...); ``convert`` leaves it out and says so.
- ``partial``: accepted, but deployctl does not act on it yet (the note says what).
- ``planned``: not supported yet, being built.
- ``unsupported``: not supported; the note says why or what to use instead.
"""

# ruff: noqa: E501 - a data table: one row per line reads best

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

Status = Literal["same", "renamed", "converted", "dropped", "partial", "planned", "unsupported"]
Resource = Literal["Rollout", "AnalysisTemplate"]
NOT_SUPPORTED: frozenset[str] = frozenset({"planned", "unsupported"})

ANALYSIS_REFS = (
    "spec.strategy.canary.steps[].analysis",
    "spec.strategy.canary.analysis",
    "spec.strategy.blueGreen.prePromotionAnalysis",
    "spec.strategy.blueGreen.postPromotionAnalysis",
)


@dataclass(frozen=True)
class ArgoField:
    """One row of the table."""

    resource: Resource
    argo: str
    status: Status
    ours: str = ""
    feature: str = ""
    note: str = ""

    def paths(self) -> list[str]:
        """The concrete Argo paths this row stands for (``<analysis>`` expanded)."""
        if self.argo.startswith("<analysis>"):
            return [self.argo.replace("<analysis>", ref, 1) for ref in ANALYSIS_REFS]
        return [self.argo]


def _rows(resource: Resource, *rows: tuple[str, ...]) -> list[ArgoField]:
    out = []
    for row in rows:
        argo, status, *rest = row
        ours, feature, note = (list(rest) + ["", "", ""])[:3]
        out.append(ArgoField(resource, argo, status, ours, feature, note))  # type: ignore[arg-type]
    return out


R: Resource = "Rollout"
A: Resource = "AnalysisTemplate"
# Each row: (Argo path, status, our spelling, the Argo feature named in messages, note).
ROLLOUT_ROWS = _rows(
    R,
    (
        "apiVersion",
        "converted",
        "deployctl.io/v1alpha1",
        "",
        "argoproj.io/v1alpha1 becomes deployctl.io/v1alpha1",
    ),
    ("kind", "same"),
    ("metadata", "same"),
    ("spec.replicas", "same"),
    ("spec.selector.matchLabels", "same"),
    (
        "spec.selector.matchExpressions",
        "unsupported",
        "",
        "label selector expressions",
        "a Rollout selects its pods by matchLabels",
    ),
    ("spec.template", "same"),
    (
        "spec.workloadRef",
        "same",
        "",
        "",
        "apiVersion apps/v1, kind Deployment, name, scaleDown never|onsuccess|progressively; "
        "hand back with the deployctl.io/hand-back annotation (docs/workloads.md)",
    ),
    (
        "spec.minReadySeconds",
        "same",
        "",
        "",
        "a Ready pod counts as available once it has been Ready this long",
    ),
    ("spec.revisionHistoryLimit", "same"),
    ("spec.paused", "same"),
    ("spec.progressDeadlineSeconds", "same"),
    (
        "spec.progressDeadlineAbort",
        "dropped",
        "",
        "progressDeadlineAbort",
        "deployctl always aborts a canary stuck past progressDeadlineSeconds (Argo's progressDeadlineAbort: true)",
    ),
    (
        "spec.restartAt",
        "unsupported",
        "",
        "restartAt (restarting pods)",
        "deployctl never restarts pods in place; roll out a new revision",
    ),
    (
        "spec.rollbackWindow",
        "unsupported",
        "",
        "rollbackWindow",
        "`deployctl undo` always goes straight back to a promoted revision",
    ),
    (
        "spec.analysis.successfulRunHistoryLimit",
        "dropped",
        "",
        "",
        "analysis runs live in the Rollout's status, bounded",
    ),
    (
        "spec.analysis.unsuccessfulRunHistoryLimit",
        "dropped",
        "",
        "",
        "analysis runs live in the Rollout's status, bounded",
    ),
    ("spec.strategy.canary.stableService", "same"),
    ("spec.strategy.canary.canaryService", "same"),
    ("spec.strategy.canary.steps[].setWeight", "same", "", "", "weights must not decrease"),
    (
        "spec.strategy.canary.steps[].pause",
        "same",
        "",
        "",
        "a duration in seconds or 30s/2m/1h; no duration waits for `deployctl promote`",
    ),
    (
        "spec.strategy.canary.steps[].analysis",
        "same",
        "",
        "",
        "runs until its metrics finish; the step waits",
    ),
    ("spec.strategy.canary.steps[].experiment", "unsupported", "", "experiment steps"),
    ("spec.strategy.canary.steps[].setCanaryScale", "unsupported", "", "setCanaryScale"),
    (
        "spec.strategy.canary.steps[].setHeaderRoute",
        "same",
        "",
        "header-based routing (setHeaderRoute)",
    ),
    (
        "spec.strategy.canary.steps[].setMirrorRoute",
        "same",
        "",
        "traffic mirroring (setMirrorRoute)",
    ),
    ("spec.strategy.canary.steps[].plugin", "unsupported", "", "step plugins"),
    (
        "spec.strategy.canary.analysis",
        "converted",
        "spec.analysis",
        "",
        "background analysis lives at spec.analysis for every strategy",
    ),
    (
        "spec.strategy.canary.analysis.startingStep",
        "unsupported",
        "",
        "background analysis from a later step (startingStep)",
        "spec.analysis runs from the first step; use an analysis step to start later",
    ),
    ("<analysis>.templates[].templateName", "renamed", "name", "", ""),
    (
        "<analysis>.templates[].clusterScope",
        "converted",
        "",
        "",
        "ClusterAnalysisTemplates become namespaced AnalysisTemplates; convert drops clusterScope",
    ),
    ("<analysis>.args[].name", "same"),
    ("<analysis>.args[].value", "same"),
    ("<analysis>.args[].valueFrom.podTemplateHashValue", "same", "", "", "Stable or Latest"),
    (
        "<analysis>.args[].valueFrom.fieldRef",
        "same",
        "",
        "",
        "a field of the Rollout, e.g. metadata.labels['app']",
    ),
    ("<analysis>.dryRun", "unsupported", "", "dry-run metrics"),
    (
        "<analysis>.measurementRetention",
        "dropped",
        "",
        "",
        "status keeps each metric's newest 10 measurements",
    ),
    (
        "<analysis>.analysisRunMetadata",
        "dropped",
        "",
        "",
        "deployctl creates no AnalysisRun objects",
    ),
    (
        "spec.strategy.canary.trafficRouting.plugins.argoproj-labs/gatewayAPI.httpRoute",
        "converted",
        "spec.strategy.canary.trafficRouting.gatewayAPI.httpRoute",
        "",
        "Gateway API is built in, not a plugin",
    ),
    (
        "spec.strategy.canary.trafficRouting.plugins.argoproj-labs/gatewayAPI.namespace",
        "dropped",
        "",
        "",
        "the HTTPRoute is in the Rollout's namespace",
    ),
    (
        "spec.strategy.canary.trafficRouting.plugins.argoproj-labs/gatewayAPI.httpRoutes",
        "unsupported",
        "",
        "several HTTPRoutes per Rollout",
        "one HTTPRoute (gatewayAPI.httpRoute)",
    ),
    (
        "spec.strategy.canary.trafficRouting.plugins",
        "unsupported",
        "",
        "traffic router plugins",
        "Gateway API is built in (trafficRouting.gatewayAPI)",
    ),
    ("spec.strategy.canary.trafficRouting.istio", "same", "", "Istio traffic routing"),
    ("spec.strategy.canary.trafficRouting.nginx", "same", "", "NGINX Ingress traffic routing"),
    (
        "spec.strategy.canary.trafficRouting.managedRoutes",
        "same",
        "",
        "managed routes (for setHeaderRoute/setMirrorRoute)",
    ),
    (
        "spec.strategy.canary.trafficRouting.alb",
        "unsupported",
        "",
        "AWS ALB traffic routing",
        "needs an AWS load balancer controller; not testable on our sandbox yet",
    ),
    (
        "spec.strategy.canary.trafficRouting.smi",
        "unsupported",
        "",
        "SMI traffic routing",
        "the SMI project is archived; use Gateway API",
    ),
    (
        "spec.strategy.canary.trafficRouting.ambassador",
        "unsupported",
        "",
        "Ambassador traffic routing",
    ),
    (
        "spec.strategy.canary.trafficRouting.appMesh",
        "unsupported",
        "",
        "AWS App Mesh traffic routing",
    ),
    ("spec.strategy.canary.trafficRouting.traefik", "unsupported", "", "Traefik traffic routing"),
    ("spec.strategy.canary.trafficRouting.apisix", "unsupported", "", "APISIX traffic routing"),
    ("spec.strategy.canary.trafficRouting.maxTrafficWeight", "unsupported", "", "maxTrafficWeight"),
    (
        "spec.strategy.canary.maxSurge",
        "partial",
        "",
        "",
        "accepted; the canary honouring it is planned (today only the rolling strategy reads it)",
    ),
    (
        "spec.strategy.canary.maxUnavailable",
        "partial",
        "",
        "",
        "accepted; the canary honouring it is planned (today only the rolling strategy reads it)",
    ),
    ("spec.strategy.canary.scaleDownDelaySeconds", "same"),
    ("spec.strategy.canary.dynamicStableScale", "same"),
    (
        "spec.strategy.canary.abortScaleDownDelaySeconds",
        "unsupported",
        "",
        "abortScaleDownDelaySeconds",
        "an aborted canary is scaled down at once",
    ),
    (
        "spec.strategy.canary.scaleDownDelayRevisionLimit",
        "unsupported",
        "",
        "scaleDownDelayRevisionLimit",
    ),
    ("spec.strategy.canary.canaryMetadata", "unsupported", "", "canary/stable pod metadata"),
    ("spec.strategy.canary.stableMetadata", "unsupported", "", "canary/stable pod metadata"),
    ("spec.strategy.canary.antiAffinity", "unsupported", "", "anti-affinity between revisions"),
    ("spec.strategy.canary.pingPong", "unsupported", "", "ping-pong services"),
    ("spec.strategy.canary.minPodsPerReplicaSet", "unsupported", "", "minPodsPerReplicaSet"),
    (
        "spec.strategy.canary.replicaProgressThreshold",
        "unsupported",
        "",
        "replicaProgressThreshold",
    ),
    ("spec.strategy.blueGreen.activeService", "same"),
    ("spec.strategy.blueGreen.previewService", "same"),
    ("spec.strategy.blueGreen.autoPromotionEnabled", "same"),
    ("spec.strategy.blueGreen.autoPromotionSeconds", "same"),
    ("spec.strategy.blueGreen.prePromotionAnalysis", "same"),
    ("spec.strategy.blueGreen.postPromotionAnalysis", "same"),
    ("spec.strategy.blueGreen.scaleDownDelaySeconds", "same"),
    ("spec.strategy.blueGreen.previewReplicaCount", "same"),
    ("spec.strategy.blueGreen.maxUnavailable", "unsupported", "", "maxUnavailable for blue-green"),
    (
        "spec.strategy.blueGreen.abortScaleDownDelaySeconds",
        "unsupported",
        "",
        "abortScaleDownDelaySeconds",
        "an aborted preview is scaled down at once",
    ),
    (
        "spec.strategy.blueGreen.scaleDownDelayRevisionLimit",
        "unsupported",
        "",
        "scaleDownDelayRevisionLimit",
    ),
    ("spec.strategy.blueGreen.previewMetadata", "unsupported", "", "active/preview pod metadata"),
    ("spec.strategy.blueGreen.activeMetadata", "unsupported", "", "active/preview pod metadata"),
    ("spec.strategy.blueGreen.antiAffinity", "unsupported", "", "anti-affinity between revisions"),
)

ANALYSIS_ROWS = _rows(
    A,
    (
        "apiVersion",
        "converted",
        "deployctl.io/v1alpha1",
        "",
        "argoproj.io/v1alpha1 becomes deployctl.io/v1alpha1",
    ),
    (
        "kind",
        "same",
        "",
        "",
        "ClusterAnalysisTemplate becomes an AnalysisTemplate: apply it in each namespace that uses it",
    ),
    ("metadata", "same"),
    ("spec.args[].name", "same"),
    ("spec.args[].value", "same"),
    (
        "spec.args[].valueFrom.secretKeyRef",
        "same",
        "",
        "",
        "read when measuring; its value is masked in status, Events and logs",
    ),
    ("spec.args[].valueFrom.fieldRef", "same", "", "", "a field of the Rollout"),
    (
        "spec.templates",
        "unsupported",
        "",
        "templates composed of other templates",
        "list each template in the Rollout's analysis",
    ),
    ("spec.dryRun", "unsupported", "", "dry-run metrics"),
    (
        "spec.measurementRetention",
        "dropped",
        "",
        "",
        "status keeps each metric's newest 10 measurements",
    ),
    ("spec.metrics[].name", "same"),
    (
        "spec.metrics[].interval",
        "same",
        "",
        "",
        "may be {{args.NAME}}; an Argo metric without interval is measured once: convert adds count: 1",
    ),
    ("spec.metrics[].initialDelay", "same", "", "", "may be {{args.NAME}}"),
    ("spec.metrics[].count", "same", "", "", "may be {{args.NAME}}; 0 means no limit, as in Argo"),
    ("spec.metrics[].failureLimit", "same", "", "", "may be {{args.NAME}}"),
    ("spec.metrics[].inconclusiveLimit", "same", "", "", "may be {{args.NAME}}"),
    ("spec.metrics[].consecutiveErrorLimit", "same", "", "", "may be {{args.NAME}}"),
    ("spec.metrics[].consecutiveSuccessLimit", "unsupported", "", "consecutiveSuccessLimit"),
    (
        "spec.metrics[].successCondition",
        "converted",
        "threshold",
        "",
        "plain comparisons (result[0] < 0.05, result.status == 'ok') become threshold / jsonPath+equals; other expressions are reported",
    ),
    (
        "spec.metrics[].failureCondition",
        "converted",
        "threshold",
        "",
        "as successCondition, the other way round",
    ),
    ("spec.metrics[].provider.prometheus.address", "same"),
    (
        "spec.metrics[].provider.prometheus.query",
        "same",
        "",
        "",
        "{{args.*}} values are escaped for PromQL",
    ),
    ("spec.metrics[].provider.prometheus.timeout", "same"),
    (
        "spec.metrics[].provider.prometheus.insecure",
        "unsupported",
        "",
        "Prometheus without TLS verification",
    ),
    ("spec.metrics[].provider.prometheus.headers", "unsupported", "", "Prometheus request headers"),
    (
        "spec.metrics[].provider.prometheus.authentication",
        "unsupported",
        "",
        "Prometheus authentication (basic, OAuth2, SigV4)",
    ),
    (
        "spec.metrics[].provider.prometheus.rangeQuery",
        "unsupported",
        "",
        "Prometheus range queries",
        "`deployctl analyze` replays a template over history",
    ),
    ("spec.metrics[].provider.web.url", "same", "", "", "{{args.*}} values are percent-encoded"),
    ("spec.metrics[].provider.web.method", "same", "", "", "GET or POST"),
    ("spec.metrics[].provider.web.headers[].key", "renamed", "name"),
    (
        "spec.metrics[].provider.web.headers[].value",
        "same",
        "",
        "",
        "{{args.*}} allowed; never a line break",
    ),
    (
        "spec.metrics[].provider.web.body",
        "same",
        "",
        "",
        "{{args.*}} values are JSON-escaped in a JSON body",
    ),
    (
        "spec.metrics[].provider.web.jsonBody",
        "converted",
        "body",
        "",
        "written as a JSON body, with method POST",
    ),
    (
        "spec.metrics[].provider.web.jsonPath",
        "same",
        "",
        "",
        "Argo's {$.data.ok} spelling is accepted",
    ),
    ("spec.metrics[].provider.web.timeoutSeconds", "renamed", "timeout"),
    (
        "spec.metrics[].provider.web.insecure",
        "unsupported",
        "",
        "HTTP checks without TLS verification",
    ),
    (
        "spec.metrics[].provider.web.authentication",
        "unsupported",
        "",
        "HTTP check authentication (basic, OAuth2, SigV4)",
        "send a header from a Secret (headers[].valueFrom.secretKeyRef)",
    ),
    (
        "spec.metrics[].provider.job",
        "same",
        "",
        "",
        "{{args.*}} filled in every string of the Job spec",
    ),
    ("spec.metrics[].provider.datadog", "unsupported", "", "the Datadog provider"),
    ("spec.metrics[].provider.newRelic", "unsupported", "", "the New Relic provider"),
    ("spec.metrics[].provider.wavefront", "unsupported", "", "the Wavefront provider"),
    (
        "spec.metrics[].provider.kayenta",
        "unsupported",
        "",
        "the Kayenta provider",
        "relativeTo: stable compares the canary with stable",
    ),
    ("spec.metrics[].provider.cloudWatch", "unsupported", "", "the CloudWatch provider"),
    ("spec.metrics[].provider.graphite", "unsupported", "", "the Graphite provider"),
    ("spec.metrics[].provider.influxdb", "unsupported", "", "the InfluxDB provider"),
    ("spec.metrics[].provider.skywalking", "unsupported", "", "the SkyWalking provider"),
    ("spec.metrics[].provider.plugin", "unsupported", "", "metric provider plugins"),
)

TABLE: tuple[ArgoField, ...] = (*ROLLOUT_ROWS, *ANALYSIS_ROWS)


def _segments(path: str) -> list[str]:
    """``a.b[].c`` -> ``['a', 'b', '[]', 'c']``: a row for ``a.b`` covers its list items."""
    return re.findall(r"[^.\[\]]+|\[\]", normalize(path))


def normalize(path: str) -> str:
    """A concrete path (``steps[2].analysis``) in table form (``steps[].analysis``)."""
    return re.sub(r"\[[^\]]*\]", "[]", path)


def lookup(resource: str, path: str) -> ArgoField | None:
    """The row that decides ``path`` (the longest row path that is a prefix of it)."""
    target = _segments(path)
    best: tuple[int, ArgoField] | None = None
    for row in TABLE:
        if row.resource != resource and not (
            resource == "ClusterAnalysisTemplate" and row.resource == "AnalysisTemplate"
        ):
            continue
        for candidate in row.paths():
            segments = _segments(candidate)
            if target[: len(segments)] == segments and (best is None or len(segments) > best[0]):
                best = (len(segments), row)
    return best[1] if best is not None else None


def rows(status: Iterable[Status] | None = None) -> Iterator[ArgoField]:
    wanted = set(status) if status is not None else None
    return (r for r in TABLE if wanted is None or r.status in wanted)


def not_supported_message(row: ArgoField) -> str:
    """What ``validate`` says of a field deployctl does not support."""
    what = row.feature or row.argo.rsplit(".", 1)[-1]
    when = (
        "not supported by deployctl yet"
        if row.status == "planned"
        else "not supported by deployctl"
    )
    extra = f"; {row.note}" if row.note else ""
    return f"{when} (Argo Rollouts feature: {what}){extra}; see docs/argo.md"


def hint(row: ArgoField) -> str:
    """What ``validate`` says of an Argo field that is unknown to our schema."""
    if row.status in NOT_SUPPORTED:
        return not_supported_message(row)
    old = row.argo.rsplit(".", 1)[-1]
    if row.status == "renamed":
        return (
            f"Argo Rollouts' {old} is called {row.ours} in deployctl (renamed: {old} -> "
            f"{row.ours}); `deployctl convert` rewrites Argo manifests"
        )
    if row.status == "converted":
        where = f" as {row.ours}" if row.ours else ""
        return (
            f"Argo Rollouts' {old} is written differently in deployctl{where}: {row.note}; "
            "`deployctl convert` rewrites it (docs/argo.md)"
        )
    if row.status == "dropped":
        return f"Argo Rollouts' {old} is not needed in deployctl: {row.note}; remove it"
    return ""


STATUS_TEXT = {
    "same": "same",
    "renamed": "renamed",
    "converted": "converted by `deployctl convert`",
    "dropped": "not needed (convert drops it)",
    "partial": "accepted, not acted on yet (planned)",
    "planned": "planned",
    "unsupported": "unsupported",
}


def markdown_table() -> str:
    """The docs/argo.md table: one row per field, Rollout then AnalysisTemplate."""
    lines = []
    for resource in ("Rollout", "AnalysisTemplate"):
        lines += [
            f"### {resource}",
            "",
            "| Argo Rollouts | deployctl | status | notes |",
            "| --- | --- | --- | --- |",
        ]
        for row in TABLE:
            if row.resource != resource:
                continue
            ours = row.ours or ("(same)" if row.status in ("same", "partial") else "-")
            note = row.note
            if row.feature and row.status in NOT_SUPPORTED:
                note = f"{row.feature}" + (f": {note}" if note else "")
            cells = [
                f"`{row.argo}`",
                f"`{ours}`" if row.ours else ours,
                STATUS_TEXT[row.status],
                note,
            ]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)
