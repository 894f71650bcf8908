"""One reconcile pass for one Rollout: read state, ask the strategy, apply, write status.

Called by the operator's workers with a ``namespace/name`` key (level-triggered: the key
says *which* rollout, the caches say *what* it looks like now). ``reconcile`` reads like
a table of contents:

1. read the Rollout from the cache; a deleted one needs nothing;
2. parse it; an invalid spec gets the InvalidSpec condition and an Event, and nothing in
   the cluster is touched;
3. measure the analysis runs that are due (the strategy started them in status);
4. ask the strategy for a plan;
5. apply the plan: scale up first, then move traffic (Services, HTTPRoute), then scale
   down, so that traffic never points at pods that are not there;
6. write status once (only if it changed), then record the plan's Events;
7. return when to look again: the earliest of the strategy's timers and the next due
   measurement.

Errors from ``kube`` propagate: the worker requeues with per-key backoff (a Conflict
means our cache was stale; the next pass re-reads). Nothing here sleeps or retries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from pydantic import ValidationError

from controller.analysis.run import AnalysisEngine, BoundMetric, next_due
from controller.analysis.templating import QueryContext
from controller.api import AnalysisRef, AnalysisTemplate, Phase, Rollout, RolloutStatus
from controller.api import reasons as R
from controller.api.analysis import Metric, Provider
from controller.api.revision import replicaset_name, template_hash
from controller.api.status import AnalysisRunStatus
from controller.cache import Cache, KubeWrites, Obj
from controller.kube import merge_patch
from controller.metrics import ANALYSIS_VERDICTS, ROLLBACK_LATENCY
from controller.names import REVISION_LABEL, ROLLOUT_LABEL
from controller.observe import observe
from controller.policy_gate import Held, PolicyGate, held_events
from controller.resources import replicaset_body, service_selector
from controller.times import parse_timestamp
from controller.validation import Problem, problems_of, reference_problems
from strategies import Plan, decide
from strategies.common import hooks_of

log = structlog.stdlib.get_logger(__name__)


# Look again at least this often while a rollout is in flight, in case an event was lost.
SAFETY_RESYNC = 60.0
# Status messages are for people; keep them readable in `kubectl describe`.
MAX_MESSAGE = 1024


@dataclass(frozen=True)
class Caches:
    """The informer caches the reconciler reads from (never a GET per pass)."""

    rollouts: Cache
    templates: Cache
    replicasets: Cache
    pods: Cache
    services: Cache
    routes: Cache | None = None
    policies: Cache | None = None


@dataclass(frozen=True)
class ReconcileResult:
    requeue_after: float | None = None


class Reconciler:
    def __init__(
        self,
        kube: KubeWrites,
        caches: Caches,
        *,
        engine: AnalysisEngine,
        clock: Callable[[], datetime],
        policy: PolicyGate | None = None,
    ) -> None:
        self.kube = kube
        self.caches = caches
        self.engine = engine
        self.clock = clock
        self.policy = policy

    # ------------------------------------------------------------------ the pass

    def reconcile(self, key: str) -> ReconcileResult:
        namespace, _, name = key.partition("/")
        raw = self.caches.rollouts.get(namespace, name)
        if raw is None or raw.get("metadata", {}).get("deletionTimestamp"):
            return ReconcileResult()
        now = self.clock()
        bound = log.bind(namespace=namespace, rollout=name)
        rollout, problems = self._parse(raw)
        if rollout is None:
            return self._invalid(raw, problems, now=now)
        templates, invalid_templates = self._templates(namespace)
        ref_problems = reference_problems(rollout, templates=templates, invalid=invalid_templates)
        if ref_problems:
            return self._invalid(raw, list(ref_problems), now=now)
        revision = template_hash(rollout.spec.template)
        bound = bound.bind(revision=revision)
        status = rollout.status or RolloutStatus()
        gate = (
            self.policy.check(rollout, status, revision=revision, now=now) if self.policy else None
        )
        if isinstance(gate, Held):
            return self._hold(raw, rollout, gate, log=bound)
        if gate is not None:
            status = gate.status
        status, hook_events = self._measure(rollout, status, templates, now=now)
        observed = self._observe(rollout, status)
        plan = decide(
            rollout.model_copy(update={"status": status}), observed, now=now, revision=revision
        )
        self._apply(rollout, plan, revision=revision, log=bound)
        new_status = plan.status.model_copy(
            update={"observed_generation": rollout.metadata.generation}
        )
        if gate is not None:
            new_status = gate.record(new_status, revision=revision)
        self._note_rollback(rollout.status, new_status, now=now)
        # Status first: if the write fails the pass is retried, and the Events, written
        # only after it, are not recorded twice for one step.
        self._write_status(raw, new_status)
        policy_events = [(e.type, e.reason, e.message) for e in gate.events] if gate else []
        plan_events = [(e.type, e.reason, e.message) for e in plan.events]
        for type_, reason, message in policy_events + hook_events + plan_events:
            self.kube.record_event(raw, reason=reason, message=message, type=type_)
            bound.info(message, reason=reason, event_type=type_)
        if self.policy is not None:
            self.policy.notify(rollout, rollout.status, new_status, now=now)
        return ReconcileResult(
            requeue_after=self._requeue_after(rollout, plan, new_status, templates, now=now)
        )

    def _hold(self, raw: Obj, rollout: Rollout, held: Held, *, log: Any) -> ReconcileResult:
        """A new revision policy holds back: write why, change nothing in the cluster."""
        self._write_status(raw, held.status)
        for type_, reason, message in held_events(rollout.status, held):
            self.kube.record_event(raw, reason=reason, message=message, type=type_)
            log.info(message, reason=reason, event_type=type_)
        if self.policy is not None:
            self.policy.notify(rollout, rollout.status, held.status, now=self.clock())
        return ReconcileResult(requeue_after=held.requeue_after)

    # ------------------------------------------------------------------ reading

    def _parse(self, raw: Obj) -> tuple[Rollout | None, list[Problem]]:
        try:
            return Rollout.model_validate(raw), []
        except ValidationError as exc:
            return None, list(problems_of(exc))

    def _templates(self, namespace: str) -> tuple[dict[str, AnalysisTemplate], dict[str, str]]:
        """The namespace's valid templates by name, and the invalid ones' problems."""
        out: dict[str, AnalysisTemplate] = {}
        invalid: dict[str, str] = {}
        for obj in self.caches.templates.list(namespace):
            try:
                template = AnalysisTemplate.model_validate(obj)
            except ValidationError as exc:
                # Reported by the reference check of each Rollout that uses it.
                name = str((obj.get("metadata") or {}).get("name", ""))
                invalid[name] = "; ".join(str(p) for p in problems_of(exc))
                continue
            out[str(template.metadata.name)] = template
        return out, invalid

    def _observe(self, rollout: Rollout, status: RolloutStatus) -> Any:
        namespace, name = str(rollout.metadata.namespace), str(rollout.metadata.name)
        owned = self.caches.replicasets.list(namespace, labels={ROLLOUT_LABEL: name})
        pods = self.caches.pods.list(namespace, labels={ROLLOUT_LABEL: name})
        services = {
            svc_name: svc
            for svc_name in rollout.spec.strategy.service_names
            if (svc := self.caches.services.get(namespace, svc_name)) is not None
        }
        route = None
        canary = rollout.spec.strategy.canary
        if canary is not None and canary.traffic_routing is not None and self.caches.routes:
            route = self.caches.routes.get(namespace, canary.traffic_routing.gateway_api.http_route)
        return observe(
            rollout, status=status, replicasets=owned, pods=pods, services=services, route=route
        )

    # ------------------------------------------------------------------ analysis

    def _measure(
        self,
        rollout: Rollout,
        status: RolloutStatus,
        templates: Mapping[str, AnalysisTemplate],
        *,
        now: datetime,
    ) -> tuple[RolloutStatus, list[tuple[str, str, str]]]:
        """Take every due measurement of the runs the strategy has running; with the
        Events of hooks that finished."""
        runs = []
        changed = False
        hook_events: list[tuple[str, str, str]] = []
        for run in status.analysis_runs:
            ref = analysis_ref(rollout, run.key)
            hooks = hook_metrics(rollout, run.key)
            if run.phase not in ("Running", "Pending") or (ref is None and hooks is None):
                runs.append(run)
                continue
            context = query_context(rollout, status, run)
            if hooks is not None:
                advanced = self.engine.advance_bound(run, hooks, context=context, now=now)
                hook_events.extend(hook_outcomes(run, advanced))
            else:
                assert ref is not None
                advanced = self.engine.advance(
                    run, templates=templates, ref=ref, context=context, now=now
                )
            _count_verdicts(run, advanced)
            changed = changed or advanced != run
            runs.append(advanced)
        if not changed:
            return status, hook_events
        return status.model_copy(update={"analysis_runs": runs}), hook_events

    def _requeue_after(
        self,
        rollout: Rollout,
        plan: Plan,
        status: RolloutStatus,
        templates: Mapping[str, AnalysisTemplate],
        *,
        now: datetime,
    ) -> float | None:
        """The earliest of the strategy's timers and the next due measurement."""
        candidates = [plan.requeue_after] if plan.requeue_after is not None else []
        for run in status.analysis_runs:
            if run.phase not in ("Running", "Pending"):
                continue
            ref = analysis_ref(rollout, run.key)
            hooks = hook_metrics(rollout, run.key)
            if hooks is not None:
                due = next_due(run, [b.metric for b in hooks], now=now)
            elif ref is not None:
                due = self.engine.next_due(
                    run,
                    templates=templates,
                    ref=ref,
                    now=now,
                    context=query_context(rollout, status, run),
                )
            else:
                continue
            if due is not None:
                candidates.append((due - now).total_seconds())
        if status.phase in (Phase.PROGRESSING, Phase.PAUSED):
            candidates.append(SAFETY_RESYNC)
        return max(0.05, min(candidates)) if candidates else None

    # ------------------------------------------------------------------ applying

    def _apply(self, rollout: Rollout, plan: Plan, *, revision: str, log: Any) -> None:
        namespace, name = str(rollout.metadata.namespace), str(rollout.metadata.name)
        existing = {
            rs["metadata"]["labels"].get(REVISION_LABEL): rs
            for rs in self.caches.replicasets.list(namespace, labels={ROLLOUT_LABEL: name})
        }
        owner = self.caches.rollouts.get(namespace, name) or rollout.to_dict()
        scale_downs: list[tuple[Obj, int]] = []
        for rev, replicas in plan.replicas.items():
            rs = existing.get(rev)
            if rs is None:
                if replicas > 0 and rev == revision:
                    body = replicaset_body(rollout, revision=rev, replicas=replicas)
                    self.kube.create_replicaset(namespace, body, owner=owner)
                    log.info("created replicaset", replicaset=replicaset_name(name, rev))
                continue
            current = int(rs.get("spec", {}).get("replicas", 0))
            if replicas > current:
                self.kube.scale_replicaset(namespace, rs["metadata"]["name"], replicas)
            elif replicas < current:
                scale_downs.append((rs, replicas))
        for rev, rs in existing.items():
            if rev not in plan.replicas and int(rs.get("spec", {}).get("replicas", 0)) > 0:
                scale_downs.append((rs, 0))
        self._route_traffic(rollout, plan)
        for rs, replicas in scale_downs:
            self.kube.scale_replicaset(namespace, rs["metadata"]["name"], replicas)
        self._prune(rollout, existing, plan)

    def _route_traffic(self, rollout: Rollout, plan: Plan) -> None:
        namespace = str(rollout.metadata.namespace)
        for service_name, rev in plan.service_selectors.items():
            service = self.caches.services.get(namespace, service_name)
            if service is None:
                continue
            wanted = service_selector(rollout, rev)
            current = service.get("spec", {}).get("selector") or {}
            if any(current.get(k) != v for k, v in wanted.items()):
                self.kube.patch_service_selector(namespace, service_name, wanted)
        canary = rollout.spec.strategy.canary
        if plan.route_weights is None or canary is None or canary.traffic_routing is None:
            return
        route_name = canary.traffic_routing.gateway_api.http_route
        route = self.caches.routes.get(namespace, route_name) if self.caches.routes else None
        if route is None:
            return
        stable_rev = plan.status.stable_revision
        canary_rev = plan.status.canary_revision
        canary_weight = (
            plan.route_weights.get(canary_rev, 0) if canary_rev and canary_rev != stable_rev else 0
        )
        # The model guarantees both Services exist when trafficRouting is set.
        by_service = {
            str(canary.stable_service): 100 - canary_weight,
            str(canary.canary_service): canary_weight,
        }
        self.kube.set_httproute_weights(namespace, route_name, by_service, route=route)

    def _prune(self, rollout: Rollout, existing: Mapping[str | None, Obj], plan: Plan) -> None:
        """Delete scaled-down old ReplicaSets beyond revisionHistoryLimit, oldest first."""
        keep = {plan.status.stable_revision, plan.status.canary_revision}
        old = sorted(
            (
                rs
                for rev, rs in existing.items()
                if rev not in keep
                and rev not in plan.replicas
                and int(rs.get("spec", {}).get("replicas", 0)) == 0
            ),
            key=lambda rs: str(rs.get("metadata", {}).get("creationTimestamp", "")),
        )
        excess = len(old) - rollout.spec.revision_history_limit
        for rs in old[: max(0, excess)]:
            self.kube.delete_replicaset(
                str(rollout.metadata.namespace),
                rs["metadata"]["name"],
                uid=rs["metadata"].get("uid"),
            )

    # ------------------------------------------------------------------ status

    def _write_status(self, raw: Obj, status: RolloutStatus) -> None:
        old = raw.get("status") or {}
        new = status.to_wire()
        if old == new:
            return
        patch = merge_patch(old, new)
        if patch:
            # Conditional on the version this pass read: a pass planned from a cache that
            # had not yet seen our previous write (or a write by a controller just killed)
            # gets 409 and is re-run on fresh state, instead of writing a step twice.
            self.kube.patch_rollout_status(
                raw["metadata"]["namespace"],
                raw["metadata"]["name"],
                patch,
                resource_version=raw["metadata"].get("resourceVersion"),
            )

    def _invalid(self, raw: Obj, problems: list[Problem], *, now: datetime) -> ReconcileResult:
        """Report an invalid spec; touch nothing else, keep every other status field."""
        message = "; ".join(str(p) for p in problems)[:MAX_MESSAGE]
        try:
            status = RolloutStatus.model_validate(raw.get("status") or {})
        except ValidationError:
            status = RolloutStatus()
        previous = next(
            (c for c in status.conditions if c.type == R.ConditionType.INVALID_SPEC), None
        )
        generation = raw.get("metadata", {}).get("generation")
        conditions = R.set_condition(
            status.conditions,
            R.ConditionType.INVALID_SPEC,
            status="True",
            reason=R.INVALID_SPEC,
            message=message,
            now=now,
            generation=generation,
        )
        new_status = status.model_copy(
            update={
                "conditions": conditions,
                "observed_generation": generation,
                "reason": R.INVALID_SPEC,
                "message": message,
            }
        )
        # Status first, as in a planned pass: a write refused with 409 re-runs the pass,
        # and the Event is recorded only once the condition it announces is stored.
        self._write_status(raw, new_status)
        if previous is None or previous.message != message or previous.status != "True":
            self.kube.record_event(raw, reason=R.INVALID_SPEC, message=message, type="Warning")
            log.warning(
                "invalid spec",
                namespace=raw["metadata"].get("namespace"),
                rollout=raw["metadata"].get("name"),
                problems=message,
            )
        return ReconcileResult()

    def _note_rollback(
        self, old: RolloutStatus | None, new: RolloutStatus, *, now: datetime
    ) -> None:
        """Observe the time from the failing measurement to the abort being applied."""
        if old is None or old.aborted or not new.aborted:
            return
        failed_at = [
            parse_timestamp(m.at)
            for run in new.analysis_runs
            for metric in run.metrics
            for m in metric.measurements
            if m.phase == "Failed"
        ]
        if failed_at:
            ROLLBACK_LATENCY.observe(max(0.0, (now - max(failed_at)).total_seconds()))


def analysis_ref(rollout: Rollout, key: str) -> AnalysisRef | None:
    """The AnalysisRef an analysis run key stands for in this spec (None if gone)."""
    spec = rollout.spec
    if key == "background":
        return spec.analysis
    strategy = spec.strategy
    if key.startswith("step-") and strategy.canary is not None:
        index = int(key.removeprefix("step-"))
        steps = strategy.canary.steps
        return steps[index].analysis if 0 <= index < len(steps) else None
    if strategy.blue_green is not None:
        if key == "prePromotion":
            return strategy.blue_green.pre_promotion_analysis
        if key == "postPromotion":
            return strategy.blue_green.post_promotion_analysis
    if key.startswith("gate-") and strategy.rolling is not None:
        percent = int(key.removeprefix("gate-"))
        return next((g.analysis for g in strategy.rolling.gates if g.at_percent == percent), None)
    return None


def query_context(rollout: Rollout, status: RolloutStatus, run: AnalysisRunStatus) -> QueryContext:
    """What a run's queries and checks are about: its revision against stable."""
    return QueryContext(
        canary_hash=run.revision,
        stable_hash=status.stable_revision,
        rollout_name=rollout.metadata.name,
        rollout_namespace=rollout.metadata.namespace,
    )


def hook_metrics(rollout: Rollout, key: str) -> list[BoundMetric] | None:
    """The Jobs a hook run (``hook-preRollout``...) stands for, as job metrics; None if
    ``key`` is not a hook run or the spec no longer has those hooks."""
    chosen = hooks_of(rollout, key)
    if not chosen:
        return None
    return [
        BoundMetric(
            metric=Metric(name=hook.name, provider=Provider(job=hook.job), count=1),
            template=key,
            args={},
        )
        for hook in chosen
    ]


def hook_outcomes(
    before: AnalysisRunStatus, after: AnalysisRunStatus
) -> list[tuple[str, str, str]]:
    """An Event for each hook Job that finished in this pass, with its evidence."""
    kind = after.key.removeprefix("hook-")
    was = {m.name: m.phase for m in before.metrics}
    events = []
    for metric in after.metrics:
        if metric.phase == was.get(metric.name) or metric.phase in ("Running", "Pending"):
            continue
        if metric.phase == "Successful":
            events.append(("Normal", R.HOOK_SUCCEEDED, f"{kind} hook {metric.message}"))
        else:
            events.append(("Warning", R.HOOK_FAILED, f"{kind} hook {metric.message}"))
    return events


def _count_verdicts(before: AnalysisRunStatus, after: AnalysisRunStatus) -> None:
    """Count the measurements ``advance`` added, by verdict, for /metrics."""
    seen = {(m.name, x.at) for m in before.metrics for x in m.measurements}
    for metric in after.metrics:
        for measurement in metric.measurements:
            if (metric.name, measurement.at) not in seen:
                ANALYSIS_VERDICTS.labels(verdict=measurement.phase).inc()
