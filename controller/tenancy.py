"""What a Rollout may touch and what its pods may run as: consent and identity. Pure.

Called by the reconciler before it applies a plan; a problem found here is an
InvalidSpec (condition and Event naming the object and what to do), and nothing in the
cluster is touched.

**Consent.** The Services and the routing objects (HTTPRoute, VirtualService,
DestinationRule, stable Ingress) a Rollout names are shared objects: anyone
who can write a Rollout could otherwise point another team's Service at their own pods.
So deployctl changes one only when it consents: it carries the annotation
``deployctl.io/rollout`` naming the Rollout (several names, comma-separated, for objects
that several Rollouts share), or the Rollout owns it (an ownerReference). Existing
objects get the annotation once::

    kubectl -n shop annotate service checkout-stable deployctl.io/rollout=checkout

Even then only the selector key ``deployctl.io/revision`` is ever written; every other
key of the Service's selector is its owner's. Those keys must include the Rollout's
``selector.matchLabels`` (so the Service reaches this Rollout's pods only, not another
Rollout's with the same template) and agree with ``spec.template.metadata.labels``
(else the Service would send traffic nowhere).

**Identity.** Pods the controller creates (a revision's ReplicaSet, hook and check Jobs)
must not run as the controller: in the controller's own namespace, a pod template that
names its ServiceAccount, or mounts or reads that ServiceAccount's token Secrets
(``<account>-token-*``), is refused. Elsewhere that name is another account.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from controller.api import AnalysisTemplate, Rollout
from controller.api.rollout import TrafficRouting
from controller.names import REVISION_LABEL, ROLLOUT_LABEL
from controller.validation import Problem

CONSENT_ANNOTATION = "deployctl.io/rollout"
"""On a Service or routing object: the Rollout(s) that may change it (comma-separated)."""


@dataclass(frozen=True)
class ControllerIdentity:
    """The controller's ServiceAccount: ``namespace/service_account``."""

    namespace: str
    service_account: str


# --------------------------------------------------------------------------- consent


def shared_objects(rollout: Rollout) -> list[tuple[str, str, str]]:
    """(field path, kind, name) of every Service and routing object the Rollout names."""
    strategy = rollout.spec.strategy
    found: list[tuple[str, str, str]] = []
    if strategy.canary is not None:
        canary = strategy.canary
        base = "spec.strategy.canary"
        for field, name in (
            ("stableService", canary.stable_service),
            ("canaryService", canary.canary_service),
        ):
            if name:
                found.append((f"{base}.{field}", "Service", name))
        if canary.traffic_routing is not None:
            found += _routing_objects(canary.traffic_routing, f"{base}.trafficRouting")
    if strategy.blue_green is not None:
        bg = strategy.blue_green
        base = "spec.strategy.blueGreen"
        for field, name in (
            ("activeService", bg.active_service),
            ("previewService", bg.preview_service),
        ):
            if name:
                found.append((f"{base}.{field}", "Service", name))
    return found


def _routing_objects(routing: TrafficRouting, base: str) -> list[tuple[str, str, str]]:
    """The objects a traffic router writes to (or, for NGINX, copies a route from)."""
    if routing.gateway_api is not None:
        return [(f"{base}.gatewayAPI.httpRoute", "HTTPRoute", routing.gateway_api.http_route)]
    found: list[tuple[str, str, str]] = []
    if routing.istio is not None:
        istio = routing.istio
        single = istio.virtual_service is not None
        for index, ref in enumerate(istio.all_virtual_services):
            where = "virtualService" if single else f"virtualServices[{index}]"
            found.append((f"{base}.istio.{where}.name", "VirtualService", ref.name))
        if istio.destination_rule is not None:
            found.append(
                (
                    f"{base}.istio.destinationRule.name",
                    "DestinationRule",
                    istio.destination_rule.name,
                )
            )
    if routing.nginx is not None:
        # The stable Ingress is not written, but its routes are copied into the canary
        # Ingress: taking part of another team's host needs that team's consent too.
        single = routing.nginx.stable_ingress is not None
        for index, name in enumerate(routing.nginx.ingresses):
            where = "stableIngress" if single else f"stableIngresses[{index}]"
            found.append((f"{base}.nginx.{where}", "Ingress", name))
    return found


def consents(obj: Mapping[str, Any], rollout: Rollout) -> bool:
    """Whether ``obj`` names the Rollout in its annotation or is owned by it."""
    meta = obj.get("metadata") or {}
    named = str((meta.get("annotations") or {}).get(CONSENT_ANNOTATION, ""))
    if str(rollout.metadata.name) in {n.strip() for n in named.split(",")}:
        return True
    return any(
        ref.get("kind") == "Rollout"
        and ref.get("name") == rollout.metadata.name
        and (rollout.metadata.uid is None or ref.get("uid") == rollout.metadata.uid)
        for ref in meta.get("ownerReferences") or []
    )


def consent_problems(
    rollout: Rollout, objects: Mapping[tuple[str, str], Mapping[str, Any]]
) -> list[Problem]:
    """Problems with the shared objects that exist (``(kind, name) -> object``); objects
    not created yet are not judged (nothing is written to them until they exist)."""
    namespace, name = str(rollout.metadata.namespace), str(rollout.metadata.name)
    problems: list[Problem] = []
    for path, kind, object_name in shared_objects(rollout):
        obj = objects.get((kind, object_name))
        if obj is None:
            continue
        if not consents(obj, rollout):
            annotations = (obj.get("metadata") or {}).get("annotations") or {}
            other = annotations.get(CONSENT_ANNOTATION)
            whose = f" (it names {other!r})" if other else ""
            problems.append(
                Problem(
                    path,
                    f"{kind} {object_name} does not consent to being managed by Rollout "
                    f"{name}{whose}: deployctl changes a {kind} only when its annotation "
                    f"{CONSENT_ANNOTATION} names the Rollout; if this {kind} is yours, run "
                    f"`kubectl -n {namespace} annotate {kind.lower()} {object_name} "
                    f"{CONSENT_ANNOTATION}={name}`",
                )
            )
            continue
        if kind == "Service":
            problems += _selector_problems(path, obj, rollout)
    return problems


def _selector_problems(path: str, service: Mapping[str, Any], rollout: Rollout) -> list[Problem]:
    selector = (service.get("spec") or {}).get("selector") or {}
    labels = {
        **rollout.spec.pod_template.metadata.labels,
        ROLLOUT_LABEL: str(rollout.metadata.name),
    }
    name = (service.get("metadata") or {}).get("name")
    wrong = sorted(
        f"{key}={value}"
        for key, value in selector.items()
        if key != REVISION_LABEL and labels.get(key) != value
    )
    if wrong:
        return [
            Problem(
                path,
                f"Service {name} selects {', '.join(wrong)}, which the pods of Rollout "
                f"{rollout.metadata.name} do not carry; deployctl only sets "
                f"{REVISION_LABEL} in a Service's selector, so fix the selector or "
                "spec.template.metadata.labels",
            )
        ]
    missing = sorted(
        f"{key}={value}"
        for key, value in rollout.spec.pod_selector.match_labels.items()
        if selector.get(key) != value
    )
    if missing:
        return [
            Problem(
                path,
                f"Service {name}'s selector lacks {', '.join(missing)} (the Rollout's "
                "selector.matchLabels); deployctl only sets "
                f"{REVISION_LABEL}, so add them to the Service's selector",
            )
        ]
    return []


def revision_selector(revision: str) -> dict[str, str]:
    """The only part of a Service's selector deployctl writes."""
    return {REVISION_LABEL: revision}


# --------------------------------------------------------------------------- identity


def _pod_specs(
    rollout: Rollout, templates: Iterable[AnalysisTemplate]
) -> Iterator[tuple[str, Any]]:
    """(field path, pod spec as a dict) of every pod the controller creates for it."""
    yield "spec.template.spec", rollout.spec.pod_template.spec.to_dict()
    hooks = rollout.spec.hooks
    if hooks is not None:
        for kind, listed in (
            ("preRollout", hooks.pre_rollout),
            ("postPromotion", hooks.post_promotion),
            ("onAbort", hooks.on_abort),
        ):
            for index, hook in enumerate(listed):
                yield (
                    f"spec.hooks.{kind}[{index}].job.spec.template.spec",
                    hook.job.spec.template.spec.to_dict(),
                )
    for template in templates:
        for index, metric in enumerate(template.spec.metrics):
            if metric.job is not None:
                yield (
                    f"AnalysisTemplate {template.metadata.name}: spec.metrics[{index}]"
                    ".provider.job.spec.template.spec",
                    metric.job.spec.template.spec.to_dict(),
                )


def _secret_names(pod: Mapping[str, Any]) -> Iterator[str]:
    for volume in pod.get("volumes") or []:
        secret = (volume or {}).get("secret") or {}
        if secret.get("secretName"):
            yield str(secret["secretName"])
        for source in ((volume or {}).get("projected") or {}).get("sources") or []:
            projected = (source or {}).get("secret") or {}
            if projected.get("name"):
                yield str(projected["name"])
    for group in ("initContainers", "containers", "ephemeralContainers"):
        for container in pod.get(group) or []:
            for env in (container or {}).get("env") or []:
                ref = (((env or {}).get("valueFrom") or {}).get("secretKeyRef")) or {}
                if ref.get("name"):
                    yield str(ref["name"])
            for source in (container or {}).get("envFrom") or []:
                ref = (source or {}).get("secretRef") or {}
                if ref.get("name"):
                    yield str(ref["name"])


def identity_problems(
    rollout: Rollout,
    identity: ControllerIdentity | None,
    templates: Iterable[AnalysisTemplate] = (),
) -> list[Problem]:
    """Pod templates that would run with the controller's ServiceAccount (or its token)."""
    if identity is None or rollout.metadata.namespace != identity.namespace:
        return []
    account = identity.service_account
    problems: list[Problem] = []
    for path, pod in _pod_specs(rollout, templates):
        named = {pod.get("serviceAccountName"), pod.get("serviceAccount")} - {None}
        if account in named:
            problems.append(
                Problem(
                    f"{path}.serviceAccountName",
                    f"{account} is the deployctl controller's own ServiceAccount; pods of a "
                    "Rollout may not run as the controller (use an account of your own)",
                )
            )
        tokens = sorted({n for n in _secret_names(pod) if n.startswith(f"{account}-token-")})
        if tokens:
            problems.append(
                Problem(
                    path,
                    f"Secret {', '.join(tokens)} holds the deployctl controller's token; pods "
                    "of a Rollout may not mount or read it",
                )
            )
    return problems
