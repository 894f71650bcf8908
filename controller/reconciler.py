"""One reconcile pass for one Rollout: read state, ask the strategy, apply, write status.

Called by the operator's workers with a ``namespace/name`` key (level-triggered: the key
says *which* rollout, the caches say *what* it looks like now). ``reconcile`` reads like
a table of contents:

1. read the Rollout from the cache; a deleted one needs nothing;
2. parse it (a ``spec.workloadRef`` Rollout with its Deployment's pod template read in,
   ``controller.workload``; a missing Deployment is an invalid spec); an invalid spec
   (a missing AnalysisTemplate, a traffic router's object missing or misshapen) gets
   the InvalidSpec condition and an Event, and nothing in the cluster is touched. So
   does a Rollout naming a Service or routing object that does not consent to it, or
   pods that would run as the controller (``controller.tenancy``);
3. measure the analysis runs that are due (the strategy started them in status; their
   metrics are resolved once per pass, ``controller.bound_runs``);
4. ask the strategy for a plan;
5. apply the plan: scale up first, then move traffic (Services, then the traffic router:
   weights, header and mirror routes), then scale down, so that traffic never points at
   pods that are not there (an abort takes every route off the canary before its pods
   go); then scale a ``workloadRef`` Deployment down (take-over) or up (hand-back). A
   routed canary's baseline Service is created before the router names it and deleted
   after the router has dropped it;
6. write status once (only if it changed), then record the plan's Events;
7. return when to look again: the earliest of the strategy's timers and the next due
   measurement.

Errors from ``kube`` propagate: the worker requeues with per-key backoff (a Conflict
means our cache was stale; the next pass re-reads). Nothing here sleeps or retries.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import structlog
from pydantic import ValidationError

from controller import daemon, stateful
from controller.analysis.pacing import count_requests
from controller.analysis.run import AnalysisEngine, cannot_start
from controller.analysis.templating import QueryContext
from controller.api import AnalysisTemplate, Phase, Rollout, RolloutStatus
from controller.api import reasons as R
from controller.api.revision import replicaset_name, template_hash
from controller.api.rollout import Pacing
from controller.api.status import AnalysisRunStatus, DaemonSetStatus, StatefulSetStatus
from controller.api.workload_rules import DAEMONSET, STATEFULSET
from controller.bound_runs import BoundRuns, query_context
from controller.cache import Cache, KubeWrites, Obj
from controller.kube import merge_patch
from controller.limits import PASS_MEASURING, truncate
from controller.metrics import ANALYSIS_VERDICTS, ROLLBACK_LATENCY
from controller.names import (
    BASELINE_ROLE,
    HAND_BACK_ANNOTATION,
    REVISION_LABEL,
    ROLE_LABEL,
    ROLLOUT_LABEL,
)
from controller.observe import observe
from controller.own_writes import OwnWrites
from controller.parsed import ParsedObjects
from controller.policy_gate import Held, PolicyGate, held_events
from controller.resources import baseline_body, baseline_service_body, replicaset_body
from controller.routers import CANARY, STABLE, Router, RouterCaches, TrafficTarget, router_for
from controller.routers.base import baseline_service_of, baseline_split
from controller.status_writes import StatusWrites
from controller.tenancy import (
    ControllerIdentity,
    consent_problems,
    identity_problems,
    revision_selector,
    shared_objects,
)
from controller.times import parse_timestamp
from controller.validation import Problem, reference_problems
from controller.workload import TakeOver, resolve, take_over
from strategies import Observed, Plan, decide
from strategies.baseline import BASELINE_SUFFIX, baseline_revision, is_baseline
from strategies.pacing import RequestCount
from strategies.runkeys import RunKey

log = structlog.stdlib.get_logger(__name__)


# Look again at least this often while a rollout is in flight, in case an event was lost.
SAFETY_RESYNC = 60.0


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
    virtualservices: Cache | None = None
    destinationrules: Cache | None = None
    ingresses: Cache | None = None
    """The traffic routers' objects (HTTPRoutes are ``routes``); None where the CRD is
    not installed."""
    deployments: Cache | None = None
    """The Deployments a ``spec.workloadRef`` names (``controller.workload``)."""
    statefulsets: Cache | None = None
    """The StatefulSets a ``spec.workloadRef`` names (``controller.stateful``)."""
    workload_pods: Cache | None = None
    """Pods with a ``controller-revision-hash``: a StatefulSet's, which carry no label
    of ours."""
    daemonsets: Cache | None = None
    """The DaemonSets a ``spec.workloadRef`` names (``controller.daemon``)."""
    controller_revisions: Cache | None = None
    """ControllerRevisions: a DaemonSet's newest is the revision it delivers."""
    nodes: Cache | None = None
    """Nodes (cluster-wide): their labels for a DaemonSet's ``canaryNodeSelector``."""

    @property
    def router_caches(self) -> RouterCaches:
        return RouterCaches(
            httproutes=self.routes,
            virtualservices=self.virtualservices,
            destinationrules=self.destinationrules,
            ingresses=self.ingresses,
        )


class Fenced(Exception):
    """The pass may not write: this replica stopped holding the Rollout's shard."""


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
        status_writes: StatusWrites | None = None,
        parsed: ParsedObjects | None = None,
        identity: ControllerIdentity | None = None,
        writer: str | None = None,
        fence: Callable[[str], bool] | None = None,
    ) -> None:
        self.kube = kube
        self.caches = caches
        self.engine = engine
        self.clock = clock
        self.policy = policy
        # Our own status writes: read back before the cache has them, echoes recognised.
        self.status_writes = status_writes or StatusWrites()
        # Models parsed once per object version (controller.parsed).
        self.parsed = parsed or ParsedObjects()
        self.own_writes = OwnWrites()
        # The baseline Services we created, until the Service cache lists them: a pass
        # right after the create must not take the new Service for missing (nor its
        # backend off the router).
        self.own_services = OwnWrites()
        self.identity = identity
        # Recorded in status.controller on every write, so handovers can be audited.
        self.writer = writer
        # Whether this replica may still write the Rollout ``namespace/name`` (it holds
        # the Lease of its shard with time to spare); asked again right before the status
        # write, since a pass may outlast the check made when it started.
        self.fence = fence

    # ------------------------------------------------------------------ the pass

    def reconcile(self, key: str) -> ReconcileResult:
        namespace, _, name = key.partition("/")
        raw = self.caches.rollouts.get(namespace, name)
        if raw is None or raw.get("metadata", {}).get("deletionTimestamp"):
            return ReconcileResult()
        raw = self.status_writes.latest(raw)
        now = self.clock()
        bound = log.bind(namespace=namespace, rollout=name)
        rollout, problems = self._parse(raw)
        if rollout is None:
            return self._invalid(raw, problems, now=now)
        deployment = self._deployment(rollout)
        statefulset = self._statefulset(rollout)
        daemonset = self._daemonset(rollout)
        as_written = rollout  # its canary fields as the user set them (maxUnavailable)
        workload_pods: list[Mapping[str, Any]] = []
        revisions: list[Mapping[str, Any]] = []
        kind = rollout.spec.workload_ref.kind if rollout.spec.workload_ref else None
        if kind is not None:
            if kind == STATEFULSET:
                rollout, problems = stateful.resolve(rollout, statefulset)
            elif kind == DAEMONSET:
                workload_pods = self._workload_pods(daemonset) if daemonset else []
                rollout, problems = daemon.resolve(
                    rollout, daemonset, daemon.node_count(daemonset, workload_pods)
                )
            else:
                rollout, problems = resolve(rollout, deployment)
            if rollout is None:
                return self._invalid(raw, problems, now=now)
        templates, invalid_templates = self._templates(namespace)
        ref_problems = reference_problems(rollout, templates=templates, invalid=invalid_templates)
        if ref_problems:
            return self._invalid(raw, list(ref_problems), now=now)
        router = router_for(rollout, caches=self.caches.router_caches, kube=self.kube, owner=raw)
        problems = router.problems() if router is not None else []
        problems += self._tenancy_problems(rollout, templates)
        problems += self._baseline_service_problems(rollout, raw)
        if problems:
            return self._invalid(raw, problems, now=now)
        revision = (
            template_hash(rollout.spec.pod_template)
            if deployment is not None  # the template is the Deployment's, not raw's
            else self.parsed.revision(raw, rollout)
        )
        if statefulset is not None:
            delivered = stateful.revision_of(statefulset, rollout.status)
            if delivered is None:
                # The StatefulSet controller has not hashed the current template yet.
                return ReconcileResult(requeue_after=1.0)
            revision = delivered
            workload_pods = self._statefulset_pods(statefulset)
        if daemonset is not None:
            revisions = self._revisions(daemonset)
            delivered = daemon.revision_of(daemonset, revisions, rollout.status)
            if delivered is None:
                # The DaemonSet controller has not hashed the current template yet.
                return ReconcileResult(requeue_after=1.0)
            revision = delivered
        bound = bound.bind(revision=revision)
        status = _valid_again(rollout.status or RolloutStatus(), rollout, now=now)
        gate = (
            self.policy.check(rollout, status, revision=revision, now=now) if self.policy else None
        )
        if isinstance(gate, Held):
            return self._hold(raw, rollout, gate, log=bound)
        if gate is not None:
            status = gate.status
        runs = BoundRuns(self.engine, rollout, templates)
        status, hook_events = self._measure(rollout, status, runs, now=now)
        observed = self._observe(rollout, status, router, now=now)
        observed = self._count_canary_requests(rollout, status, observed, now=now)
        if statefulset is not None or daemonset is not None:
            states = stateful.revision_states(
                workload_pods,
                replicas=rollout.spec.replicas,
                now=now,
                min_ready_seconds=rollout.spec.min_ready_seconds,
            )
            observed = replace(observed, revisions=states)
        plan = decide(
            rollout.model_copy(update={"status": status}), observed, now=now, revision=revision
        )
        takeover = None
        if deployment is not None:
            plan, takeover = self._take_over(raw, rollout, plan, observed, deployment)
        update: dict[str, Any] = {"observed_generation": rollout.metadata.generation}
        workload_events: list[tuple[str, str, str]] = []
        if statefulset is not None:
            update["stateful_set"] = self._move_statefulset(statefulset, workload_pods, plan)
        elif daemonset is not None:
            update["daemon_set"], workload_events = self._move_daemonset(
                as_written, daemonset, revisions, workload_pods, plan
            )
        else:
            self._apply(rollout, plan, router, revision=revision, log=bound)
        new_status = plan.status.model_copy(update=update)
        if takeover is not None:
            # After the Rollout's own pods are where the plan wants them: a Deployment
            # pod goes only once a Rollout pod serves in its place.
            self._scale_deployment(rollout, takeover)
            new_status = new_status.model_copy(update={"workload": takeover.status})
        if gate is not None:
            new_status = gate.record(new_status, revision=revision)
        self._note_rollback(rollout.status, new_status, now=now)
        # Status first: if the write fails the pass is retried, and the Events, written
        # only after it, are not recorded twice for one step.
        self._write_status(raw, new_status, rollout=rollout, revision=revision)
        policy_events = [(e.type, e.reason, e.message) for e in gate.events] if gate else []
        plan_events: list[tuple[str, str, str]] = [
            (e.type, e.reason, e.message) for e in plan.events
        ]
        plan_events += takeover.events if takeover is not None else []
        plan_events += workload_events
        for type_, reason, message in policy_events + hook_events + plan_events:
            self.kube.record_event(raw, reason=reason, message=message, type=type_)
            bound.info(message, reason=reason, event_type=type_)
        if self.policy is not None:
            self.policy.notify(rollout, rollout.status, new_status, now=now)
        return ReconcileResult(requeue_after=self._requeue_after(plan, new_status, runs, now=now))

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
        rollout, problems = self.parsed.rollout(raw)
        return rollout, list(problems)

    def _templates(self, namespace: str) -> tuple[dict[str, AnalysisTemplate], dict[str, str]]:
        """The namespace's valid templates by name, and the invalid ones' problems."""
        out: dict[str, AnalysisTemplate] = {}
        invalid: dict[str, str] = {}
        for obj in self.caches.templates.list(namespace):
            template, problems = self.parsed.template(obj)
            if template is None:
                # Reported by the reference check of each Rollout that uses it.
                name = str((obj.get("metadata") or {}).get("name", ""))
                invalid[name] = "; ".join(str(p) for p in problems)
                continue
            out[str(template.metadata.name)] = template
        return out, invalid

    def _deployment(self, rollout: Rollout) -> Obj | None:
        """The Deployment ``spec.workloadRef`` names, as cached; None without one."""
        ref = rollout.spec.workload_ref
        if ref is None or ref.kind != "Deployment" or self.caches.deployments is None:
            return None
        return self.caches.deployments.get(str(rollout.metadata.namespace), str(ref.name))

    def _statefulset(self, rollout: Rollout) -> Obj | None:
        """The StatefulSet ``spec.workloadRef`` names, as cached; None without one."""
        ref = rollout.spec.workload_ref
        if ref is None or ref.kind != STATEFULSET or self.caches.statefulsets is None:
            return None
        return self.caches.statefulsets.get(str(rollout.metadata.namespace), str(ref.name))

    def _statefulset_pods(self, statefulset: Obj) -> list[Mapping[str, Any]]:
        return self._workload_pods(statefulset)

    def _workload_pods(self, workload: Obj) -> list[Mapping[str, Any]]:
        """The pods a StatefulSet or DaemonSet owns, as cached."""
        meta = workload.get("metadata") or {}
        labels = ((workload.get("spec") or {}).get("selector") or {}).get("matchLabels")
        if self.caches.workload_pods is None:
            return []
        cached = self.caches.workload_pods.list(str(meta.get("namespace")), labels=labels or {})
        return stateful.pods_of(workload, cached)

    def _daemonset(self, rollout: Rollout) -> Obj | None:
        """The DaemonSet ``spec.workloadRef`` names, as cached; None without one."""
        ref = rollout.spec.workload_ref
        if ref is None or ref.kind != DAEMONSET or self.caches.daemonsets is None:
            return None
        return self.caches.daemonsets.get(str(rollout.metadata.namespace), str(ref.name))

    def _revisions(self, daemonset: Obj) -> list[Mapping[str, Any]]:
        """The ControllerRevisions in the DaemonSet's namespace (``controller.daemon``
        picks its own by owner UID)."""
        if self.caches.controller_revisions is None:
            return []
        namespace = str((daemonset.get("metadata") or {}).get("namespace"))
        return list(self.caches.controller_revisions.list(namespace))

    def _move_daemonset(
        self,
        rollout: Rollout,
        daemonset: Obj,
        revisions: list[Mapping[str, Any]],
        pods: list[Mapping[str, Any]],
        plan: Plan,
    ) -> tuple[DaemonSetStatus | None, list[tuple[str, str, str]]]:
        """The update strategy, stable template and pod deletions the plan asks for
        (``controller.daemon.move``); returns where the DaemonSet stands, and the Events
        of a strategy held or handed back (recorded once status is written)."""
        status = plan.status
        canary = status.canary_revision
        nodes: dict[str, Mapping[str, Any]] = {}
        if self.caches.nodes is not None:
            nodes = {str(n["metadata"]["name"]): n for n in self.caches.nodes.list(None)}
        strategy = rollout.spec.strategy.canary
        write = daemon.move(
            daemonset,
            revisions,
            pods,
            nodes,
            status,
            canary_pods=plan.replicas.get(canary, 0) if canary else 0,
            max_unavailable=daemon.max_unavailable(rollout),
            canary_node_selector=strategy.canary_node_selector if strategy else None,
        )
        meta = daemonset["metadata"]
        namespace, name = str(meta["namespace"]), str(meta["name"])
        if write.hold:
            users = json.dumps(daemon.strategy_of(daemonset), sort_keys=True)
            self.kube.patch_daemonset_update_strategy(
                namespace,
                name,
                daemon.ON_DELETE,
                annotations={daemon.STRATEGY_ANNOTATION: users},
            )
            held = (
                f"DaemonSet {name} held at OnDelete while the Rollout replaces its pods; its "
                f"updateStrategy {daemon.strategy_of(daemonset).get('type')} is kept in "
                f"annotation {daemon.STRATEGY_ANNOTATION}"
            )
            return write.status, [("Normal", R.UPDATE_STRATEGY_HELD, held)]
        if write.template_of is not None:
            stored = stateful.owned_revision(daemonset, DAEMONSET, revisions, write.template_of)
            if stored is not None:
                template = self.kube.get_statefulset_template(namespace, stored)
                self.kube.patch_daemonset_template(daemonset, template)
        for deletion in write.deletions:
            self.kube.delete_pod(namespace, deletion.pod, uid=deletion.uid)
        if write.hand_back is not None:
            # Only on the DaemonSet as read: a new template held meanwhile stays held.
            self.kube.patch_daemonset_update_strategy(
                namespace,
                name,
                write.hand_back,
                resource_version=str(meta.get("resourceVersion")),
                annotations={daemon.STRATEGY_ANNOTATION: None},
            )
            restored = (
                f"DaemonSet {name}: its updateStrategy {write.hand_back.get('type')} restored; "
                f"every Node runs revision {status.stable_revision}"
            )
            return write.status, [("Normal", R.UPDATE_STRATEGY_RESTORED, restored)]
        return write.status, []

    def _move_statefulset(
        self, statefulset: Obj, pods: list[Mapping[str, Any]], plan: Plan
    ) -> StatefulSetStatus | None:
        """The partition the plan asks for (on a rollback first the stable template,
        with the partition in the same write); returns where the StatefulSet stands."""
        status = plan.status
        canary = status.canary_revision
        write = stateful.move(
            statefulset, pods, status, canary_pods=plan.replicas.get(canary, 0) if canary else 0
        )
        meta = statefulset["metadata"]
        namespace, name = str(meta["namespace"]), str(meta["name"])
        if write.template_of is not None:
            template = self.kube.get_statefulset_template(namespace, write.template_of)
            self.kube.patch_statefulset_template(statefulset, template, partition=write.partition)
        elif write.partition is not None:
            self.kube.patch_statefulset_partition(namespace, name, write.partition)
        if write.delete is not None:
            pod, uid = write.delete
            self.kube.delete_pod(namespace, pod, uid=uid)
        return write.status

    def _take_over(
        self, raw: Obj, rollout: Rollout, plan: Plan, observed: Observed, deployment: Obj
    ) -> tuple[Plan, TakeOver]:
        """The Deployment's part in this pass (``controller.workload``); once handed
        back, the plan keeps every revision of the Rollout at 0."""
        status = plan.status
        stable = observed.state(status.stable_revision)
        available = sum(state.available for state in observed.revisions.values())
        annotations = raw.get("metadata", {}).get("annotations") or {}
        takeover = take_over(
            rollout,
            deployment,
            phase=status.phase,
            stable_available=stable.available,
            available=available,
            hand_back=annotations.get(HAND_BACK_ANNOTATION) == "true",
        )
        if takeover.scale_rollout_to_zero:
            plan = replace(plan, replicas={rev: 0 for rev in plan.replicas})
        return plan, takeover

    def _scale_deployment(self, rollout: Rollout, takeover: TakeOver) -> None:
        ref = rollout.spec.workload_ref
        if ref is None or takeover.deployment_replicas is None:
            return
        self.kube.scale_deployment(
            str(rollout.metadata.namespace), str(ref.name), takeover.deployment_replicas
        )

    def _tenancy_problems(
        self, rollout: Rollout, templates: Mapping[str, AnalysisTemplate]
    ) -> list[Problem]:
        """Shared objects that do not consent; pods that would run as the controller."""
        namespace = str(rollout.metadata.namespace)
        caches: dict[str, Cache | None] = {
            "Service": self.caches.services,
            "HTTPRoute": self.caches.routes,
            "VirtualService": self.caches.virtualservices,
            "DestinationRule": self.caches.destinationrules,
            "Ingress": self.caches.ingresses,
        }
        objects: dict[tuple[str, str], Obj] = {}
        for _path, kind, name in shared_objects(rollout):
            cache = caches[kind]
            found = cache.get(namespace, name) if cache is not None else None
            if found is not None:
                objects[(kind, name)] = found
        used = {t.name for ref in rollout.spec.analysis_refs() for t in ref.templates}
        return consent_problems(rollout, objects) + identity_problems(
            rollout, self.identity, [templates[n] for n in sorted(used) if n in templates]
        )

    def _observe(
        self, rollout: Rollout, status: RolloutStatus, router: Router | None, *, now: datetime
    ) -> Observed:
        namespace, name = str(rollout.metadata.namespace), str(rollout.metadata.name)
        owned = self._replicasets(namespace, name)
        pods = self.caches.pods.list(namespace, labels={ROLLOUT_LABEL: name})
        services = {
            svc_name: svc
            for svc_name in rollout.spec.strategy.service_names
            if (svc := self.caches.services.get(namespace, svc_name)) is not None
        }
        return observe(
            rollout,
            status=status,
            replicasets=owned,
            pods=pods,
            services=services,
            router_weights=router.weights() if router is not None else None,
            now=now,
        )

    # ------------------------------------------------------------------ analysis

    def _measure(
        self, rollout: Rollout, status: RolloutStatus, runs: BoundRuns, *, now: datetime
    ) -> tuple[RolloutStatus, list[tuple[str, str, str]]]:
        """Take every due measurement of the runs the strategy has running; with the
        Events of hooks that finished."""
        measured = []
        changed = False
        hook_events: list[tuple[str, str, str]] = []
        # One budget for the whole pass: a Rollout with many slow metrics hands its
        # worker back; the metrics still due are measured on the next pass.
        stop_by = self.engine.monotonic() + PASS_MEASURING.value
        for run in status.analysis_runs:
            bound = runs.get(run, status) if run.phase in ("Running", "Pending") else None
            if bound is None:
                measured.append(run)
                continue
            if bound.problem:
                advanced = cannot_start(run, bound.problem)
            else:
                context = query_context(rollout, status, run)
                advanced = self.engine.advance_bound(
                    run, bound.metrics, context=context, now=now, stop_by=stop_by
                )
            if bound.key.is_hook:
                hook_events.extend(hook_outcomes(run, advanced))
            _count_verdicts(run, advanced)
            changed = changed or advanced != run
            measured.append(advanced)
        if not changed:
            return status, hook_events
        return status.model_copy(update={"analysis_runs": measured}), hook_events

    def _count_canary_requests(
        self, rollout: Rollout, status: RolloutStatus, observed: Observed, *, now: datetime
    ) -> Observed:
        """Count the canary's requests while the current step is paced by traffic."""
        pause = paced_pause(rollout, status)
        if pause is None or status.canary_revision is None:
            return observed
        started = status.current_step_started_at
        elapsed = (now - parse_timestamp(started)).total_seconds() if started else 0.0
        context = QueryContext(
            canary_hash=status.canary_revision,
            stable_hash=status.stable_revision,
            rollout_name=rollout.metadata.name,
            rollout_namespace=rollout.metadata.namespace,
        )
        counted = count_requests(
            self.engine.measurer, pause, context=context, elapsed=max(elapsed, 0.0)
        )
        count = RequestCount(
            step=status.current_step_index or 0,
            served=counted.served,
            recent=counted.recent,
            problem=counted.problem,
        )
        return replace(observed, canary_requests=count)

    def _requeue_after(
        self, plan: Plan, status: RolloutStatus, runs: BoundRuns, *, now: datetime
    ) -> float | None:
        """The earliest of the strategy's timers and the next due measurement."""
        candidates = [plan.requeue_after] if plan.requeue_after is not None else []
        for run in status.analysis_runs:
            if run.phase not in ("Running", "Pending"):
                continue
            bound = runs.get(run, status)
            if bound is None or bound.problem:
                continue
            due = self.engine.next_due(run, bound.metrics, now=now)
            context = query_context(runs.rollout, status, run)
            self.engine.expect(run, bound.metrics, context=context, now=now)
            if due is not None:
                candidates.append((due - now).total_seconds())
        if status.phase in (Phase.PROGRESSING, Phase.PAUSED):
            candidates.append(SAFETY_RESYNC)
        return max(0.05, min(candidates)) if candidates else None

    # ------------------------------------------------------------------ applying

    def _apply(
        self, rollout: Rollout, plan: Plan, router: Router | None, *, revision: str, log: Any
    ) -> None:
        namespace, name = str(rollout.metadata.namespace), str(rollout.metadata.name)
        existing = {
            rs["metadata"]["labels"].get(REVISION_LABEL): rs
            for rs in self._replicasets(namespace, name)
        }
        owner = self.caches.rollouts.get(namespace, name) or rollout.to_dict()
        scale_downs: list[tuple[Obj, int]] = []
        for rev, replicas in plan.replicas.items():
            rs = existing.get(rev)
            if rs is None:
                body = self._new_replicaset(rollout, existing, rev, replicas, revision=revision)
                if body is not None:
                    created = self.kube.create_replicaset(namespace, body, owner=owner)
                    self.own_writes.remember(created, created=True)
                    log.info("created replicaset", replicaset=replicaset_name(name, rev))
                continue
            current = int(rs.get("spec", {}).get("replicas", 0))
            if replicas > current:
                self._scale(namespace, rs, replicas)
            elif replicas < current:
                scale_downs.append((rs, replicas))
        for rev, rs in existing.items():
            if rev not in plan.replicas and int(rs.get("spec", {}).get("replicas", 0)) > 0:
                scale_downs.append((rs, 0))
        self._route_traffic(rollout, plan, router)
        for rs, replicas in scale_downs:
            self._scale(namespace, rs, replicas)
        self._prune(rollout, existing, plan)

    @staticmethod
    def _new_replicaset(
        rollout: Rollout,
        existing: Mapping[str | None, Obj],
        rev: str,
        replicas: int,
        *,
        revision: str,
    ) -> dict[str, Any] | None:
        """The body of a ReplicaSet the plan needs and that does not exist: the current
        revision's from the spec, a baseline's from its stable ReplicaSet (a copy of
        exactly the stable revision); None when there is nothing to create."""
        if replicas <= 0:
            return None
        if rev == revision:
            return replicaset_body(rollout, revision=rev, replicas=replicas)
        if is_baseline(rev):
            stable = existing.get(rev.removesuffix(BASELINE_SUFFIX))
            if stable is not None:
                return baseline_body(rollout, stable, revision=rev, replicas=replicas)
        return None

    def _replicasets(self, namespace: str, rollout: str) -> list[Obj]:
        """The rollout's ReplicaSets as cached, with our own newer writes laid over."""
        labels = {ROLLOUT_LABEL: rollout}
        cached = self.caches.replicasets.list(namespace, labels=labels)
        return self.own_writes.view(namespace, cached, labels=labels)

    def _scale(self, namespace: str, rs: Obj, replicas: int) -> None:
        self.own_writes.remember(
            self.kube.scale_replicaset(namespace, rs["metadata"]["name"], replicas)
        )

    def _route_traffic(self, rollout: Rollout, plan: Plan, router: Router | None) -> None:
        """Service selectors and the router's weights and routes, in an order that never
        sends traffic to a Service without its pods: a Service gaining weight (or keeping
        it) gets its new selector before the router changes, one losing weight only
        after."""
        namespace = str(rollout.metadata.namespace)
        selectors: dict[str, dict[str, str]] = {}
        for service_name, rev in plan.service_selectors.items():
            service = self.caches.services.get(namespace, service_name)
            if service is None:
                continue
            # Only our key: the rest of the selector belongs to the Service's owner.
            wanted = revision_selector(rev)
            current = service.get("spec", {}).get("selector") or {}
            if any(current.get(k) != v for k, v in wanted.items()):
                selectors[service_name] = wanted
        target = self._traffic_target(rollout, plan) if router is not None else None
        baseline = self._baseline_kept(rollout, plan) if target is not None else None
        if target is not None and baseline is not None:
            # The baseline's Service exists before the router names it.
            if not self._ensure_baseline_service(rollout, baseline) and target.baseline:
                target = replace(target, baseline=False)
        losing: set[str] = set()
        if router is not None and target is not None:
            losing = self._losing_weight(rollout, router, target) & set(selectors)
        for service_name, wanted in selectors.items():
            if service_name not in losing:
                self.kube.patch_service_selector(namespace, service_name, wanted)
        if router is not None and target is not None:
            router.apply(target)
        for service_name in sorted(losing):
            self.kube.patch_service_selector(namespace, service_name, selectors[service_name])
        if target is not None and baseline is None:
            # Only once the router no longer names it (an abort, a promotion).
            self._drop_baseline_service(rollout)

    def _traffic_target(self, rollout: Rollout, plan: Plan) -> TrafficTarget | None:
        """Where the router should send traffic; None when the plan does not route."""
        if plan.route_weights is None:
            return None
        stable = plan.status.stable_revision or template_hash(rollout.spec.pod_template)
        canary = plan.status.canary_revision
        in_flight = canary if canary and canary != stable else None
        return TrafficTarget(
            stable=stable,
            canary=in_flight,
            canary_weight=plan.route_weights.get(in_flight, 0) if in_flight else 0,
            header_routes=plan.header_routes,
            mirror_routes=plan.mirror_routes,
            # The strategy names the baseline only once its pods can serve their share.
            baseline=bool(in_flight) and plan.route_weights.get(baseline_revision(stable), 0) > 0,
        )

    def _losing_weight(self, rollout: Rollout, router: Router, target: TrafficTarget) -> set[str]:
        """The stable / canary Services whose weight the target lowers."""
        now = router.weights()
        canary = rollout.spec.strategy.canary
        if now is None or canary is None:
            return set()
        split = baseline_split(target)
        wanted = {STABLE: split[STABLE], CANARY: split[CANARY]}
        roles = {canary.stable_service: STABLE, canary.canary_service: CANARY}
        return {
            str(service)
            for service, role in roles.items()
            if service and wanted[role] < now.get(role, 0)
        }

    # ------------------------------------------------------------------ the baseline's Service
    # Behind a router, baseline pods get their share through their own Service
    # (``controller.routers.base.baseline_service_of``), which the controller creates,
    # owns and deletes. Whether it should exist is read from the plan and the cache on
    # every pass, so a restarted controller picks up where the last one stopped.

    @staticmethod
    def _baseline_kept(rollout: Rollout, plan: Plan) -> str | None:
        """The baseline revision whose pods the plan keeps behind a router, else None."""
        canary = rollout.spec.strategy.canary
        if canary is None or canary.traffic_routing is None or not canary.baseline_enabled:
            return None
        return next((rev for rev, n in plan.replicas.items() if is_baseline(rev) and n > 0), None)

    def _baseline_service_name(self, rollout: Rollout) -> str | None:
        canary = rollout.spec.strategy.canary
        if canary is None or canary.traffic_routing is None or canary.stable_service is None:
            return None
        return baseline_service_of(str(canary.stable_service))

    def _baseline_service_problems(self, rollout: Rollout, raw: Obj) -> list[Problem]:
        """A Service by the baseline's name that this Rollout does not own: the
        controller would neither route to it nor delete it, so it says so instead."""
        canary = rollout.spec.strategy.canary
        service_name = self._baseline_service_name(rollout)
        if canary is None or not canary.baseline_enabled or service_name is None:
            return []
        current = self.caches.services.get(str(rollout.metadata.namespace), service_name)
        if current is None or _owned_by(current, raw):
            return []
        return [
            Problem(
                "spec.strategy.canary.baseline",
                f"Service {service_name} exists and is not owned by this Rollout; deployctl "
                "creates the baseline's Service under that name (the stableService's name "
                "and -baseline): rename or remove that Service",
            )
        ]

    def _ensure_baseline_service(self, rollout: Rollout, revision: str) -> bool:
        """Create the baseline's Service if missing (or point ours at ``revision``);
        whether it exists and is ours, so the router may send it traffic."""
        namespace, name = str(rollout.metadata.namespace), str(rollout.metadata.name)
        service_name = self._baseline_service_name(rollout)
        if service_name is None:
            return False
        owner = self.caches.rollouts.get(namespace, name) or rollout.to_dict()
        current = self._baseline_service(rollout, service_name)
        if current is not None:
            if not _owned_by(current, owner):
                log.warning(
                    "baseline service name taken by a service the rollout does not own",
                    namespace=namespace,
                    rollout=name,
                    service=service_name,
                )
                return False
            selector = current.get("spec", {}).get("selector") or {}
            if selector.get(REVISION_LABEL) != revision:
                self.kube.patch_service_selector(
                    namespace, service_name, {REVISION_LABEL: revision}
                )
            return True
        canary = rollout.spec.strategy.canary
        assert canary is not None  # a name was found
        stable_service = self.caches.services.get(namespace, str(canary.stable_service))
        if stable_service is None:
            return False
        body = baseline_service_body(rollout, stable_service, name=service_name, revision=revision)
        created = self.kube.create_service(namespace, body, owner=owner)
        if created is None:
            return False  # the name is taken by a Service neither cached nor ours
        self.own_services.remember(created, created=True)
        log.info("created baseline service", namespace=namespace, service=service_name)
        return True

    def _baseline_service(self, rollout: Rollout, service_name: str) -> Obj | None:
        """The baseline Service as cached, or as we created it if the cache lags."""
        namespace = str(rollout.metadata.namespace)
        cached = self.caches.services.get(namespace, service_name)
        labels = {ROLLOUT_LABEL: str(rollout.metadata.name), ROLE_LABEL: BASELINE_ROLE}
        seen = self.own_services.view(namespace, [cached] if cached else [], labels=labels)
        return next((s for s in seen if s.get("metadata", {}).get("name") == service_name), None)

    def _drop_baseline_service(self, rollout: Rollout) -> None:
        """Delete the baseline's Service if this Rollout owns one."""
        namespace = str(rollout.metadata.namespace)
        service_name = self._baseline_service_name(rollout)
        if service_name is None:
            return
        current = self._baseline_service(rollout, service_name)
        owner = self.caches.rollouts.get(namespace, str(rollout.metadata.name))
        if current is None or owner is None or not _owned_by(current, owner):
            return
        uid = current.get("metadata", {}).get("uid")
        self.own_services.forget(namespace, service_name)
        if self.kube.delete_service(namespace, service_name, uid=uid):
            log.info("deleted baseline service", namespace=namespace, service=service_name)

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
        # A baseline scaled to 0 is deleted at once: it is no revision to go back to,
        # and must not push a real one out of the history.
        baselines = [rs for rs in old if is_baseline(_revision_of(rs))]
        old = [rs for rs in old if not is_baseline(_revision_of(rs))]
        excess = len(old) - rollout.spec.revision_history_limit
        for rs in baselines + old[: max(0, excess)]:
            self.kube.delete_replicaset(
                str(rollout.metadata.namespace),
                rs["metadata"]["name"],
                uid=rs["metadata"].get("uid"),
            )
            self.own_writes.forget(str(rollout.metadata.namespace), rs["metadata"]["name"])

    # ------------------------------------------------------------------ status

    def _write_status(
        self,
        raw: Obj,
        status: RolloutStatus,
        *,
        rollout: Rollout | None = None,
        revision: str | None = None,
    ) -> None:
        """Patch the status (if it changed); ``rollout`` (parsed from ``raw``, with its
        ``revision``) makes the written version known to the parse cache."""
        old = raw.get("status") or {}
        new = status.to_wire()
        if self.writer:
            new["controller"] = self.writer
        if old == new:
            return
        key = f"{raw['metadata']['namespace']}/{raw['metadata']['name']}"
        if self.fence is not None and not self.fence(key):
            raise Fenced(f"{key}: no longer this replica's to write (its shard moved)")
        patch = merge_patch(old, new)
        if patch:
            self.status_writes.sending(raw, new)
            try:
                # Conditional on the version this pass read: a pass planned from a cache
                # that had not yet seen our previous write (or a write by a controller
                # just killed) gets 409 and is re-run on fresh state, instead of writing
                # a step twice.
                written = self.kube.patch_rollout_status(
                    raw["metadata"]["namespace"],
                    raw["metadata"]["name"],
                    patch,
                    resource_version=raw["metadata"].get("resourceVersion"),
                )
            except BaseException:
                self.status_writes.failed(raw)
                raise
            self.status_writes.sent(raw, written)
            if rollout is not None and revision is not None:
                self.parsed.remember(
                    written, rollout.model_copy(update={"status": status}), revision=revision
                )

    def _invalid(self, raw: Obj, problems: list[Problem], *, now: datetime) -> ReconcileResult:
        """Report an invalid spec; touch nothing else, keep every other status field."""
        message = truncate("; ".join(str(p) for p in problems))
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


def _owned_by(obj: Obj, owner: Mapping[str, Any]) -> bool:
    """Whether ``owner`` (a Rollout as read from the API) controls ``obj``."""
    uid = (owner.get("metadata") or {}).get("uid")
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return uid is not None and any(ref.get("uid") == uid for ref in refs)


def _revision_of(rs: Obj) -> str:
    return str((rs.get("metadata", {}).get("labels") or {}).get(REVISION_LABEL, ""))


def _valid_again(status: RolloutStatus, rollout: Rollout, *, now: datetime) -> RolloutStatus:
    """``status`` with an InvalidSpec condition from an earlier spec turned False."""
    stale = any(
        c.type == R.ConditionType.INVALID_SPEC and c.status == "True" for c in status.conditions
    )
    if not stale:
        return status
    conditions = R.set_condition(
        status.conditions,
        R.ConditionType.INVALID_SPEC,
        status="False",
        reason=R.SPEC_VALID,
        message="",
        now=now,
        generation=rollout.metadata.generation,
    )
    update: dict[str, Any] = {"conditions": conditions}
    if status.reason == R.INVALID_SPEC:
        update.update(reason="", message="")
    return status.model_copy(update=update)


def paced_pause(rollout: Rollout, status: RolloutStatus) -> Pacing | None:
    """The current canary step's pacing (a pause or an analysis step with untilRequests)."""
    canary = rollout.spec.strategy.canary
    if canary is None or status.aborted:
        return None
    index = status.current_step_index or 0
    if index >= len(canary.steps):
        return None
    step = canary.steps[index]
    pacing = step.pause or step.analysis
    return pacing if pacing is not None and pacing.until_requests is not None else None


def hook_outcomes(
    before: AnalysisRunStatus, after: AnalysisRunStatus
) -> list[tuple[str, str, str]]:
    """An Event for each hook Job that finished in this pass, with its evidence."""
    kind = RunKey.parse(after.key).hook
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
