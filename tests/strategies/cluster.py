"""A cluster whose ReplicaSet status lags, for property tests of the availability rules.

``World`` (world.py) applies a Plan as if Kubernetes acted at once. ``LaggingCluster``
plays the parts that make real clusters hard, one tick per reconcile pass:

- the ReplicaSet controller acts on a spec change only ``rs_lag`` ticks later (creating
  pods, or deleting them not-Ready first, as it does), and only then reports the new
  ``status.observedGeneration``; its ``status.availableReplicas`` lags another
  ``status_lag`` ticks (as it does right after a scale-down);
- a new pod becomes Ready ``ready_after`` ticks after it is created (never, for a broken
  revision), a deleted pod stays terminating for ``terminate_after`` ticks;
- the controller's caches are stale: each pass sees the ReplicaSets' status, the pods
  and the Services as they were ``cache_lag`` ticks ago (never older than what it saw
  before). ReplicaSet specs are seen as last written: the reconciler reads its own
  writes (``controller.own_writes``).

Each pass the real ``controller.observe.observe`` turns that (possibly stale) view into
the strategy's ``Observed``, so the counting rules are tested with the planners. The
invariants are checked on the real pods: the ones Ready and not terminating, which are
all that could be serving, after every change the cluster makes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from controller.api import Rollout
from controller.api.status import MetricResult, RolloutStatus, timestamp
from controller.names import REQUEST_ANNOTATION, REVISION_LABEL, ROLLOUT_LABEL
from controller.observe import observe
from strategies import Plan, Request, decide

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
Check = Callable[["LaggingCluster", str], None]


@dataclass
class Pod:
    name: str
    revision: str
    created: int
    ready_at: int | None  # tick at which it becomes Ready; None: never
    ready_since: datetime | None = None
    deleted_at: int | None = None

    @property
    def terminating(self) -> bool:
        return self.deleted_at is not None

    @property
    def serving(self) -> bool:
        return self.ready_since is not None and not self.terminating


@dataclass
class ReplicaSet:
    revision: str
    spec: int
    generation: int = 1
    observed_generation: int = 0
    acted_generation: int = 0
    changed_at: int = 0
    status_available: int = 0
    status_history: list[tuple[int, int, int]] = field(default_factory=list)
    """(tick, observedGeneration, availableReplicas) as the controller wrote them."""


@dataclass
class Lags:
    rs_lag: int = 1
    status_lag: int = 1
    ready_after: int = 2
    terminate_after: int = 1
    cache_lag: int = 1


@dataclass
class LaggingCluster:
    rollout: Rollout
    lags: Lags
    check: Check
    tick_seconds: float = 10.0
    tick: int = 0
    replicasets: dict[str, ReplicaSet] = field(default_factory=dict)
    pods: list[Pod] = field(default_factory=list)
    selectors: dict[str, str] = field(default_factory=dict)
    route: dict[str, int] | None = None
    """Backend Service -> weight, as the reconciler writes the HTTPRoute."""
    broken: set[str] = field(default_factory=set)
    crashing: set[str] = field(default_factory=set)
    verdict: str | None = "Successful"
    request: Request | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    """Snapshots of what the controller's caches can show, one per tick."""
    _seq: int = 0
    _seen: int = 0

    @property
    def now(self) -> datetime:
        return T0 + timedelta(seconds=self.tick * self.tick_seconds)

    @property
    def status(self) -> RolloutStatus:
        return self.rollout.status or RolloutStatus()

    # -- a settled start ------------------------------------------------------------

    @classmethod
    def settled(cls, rollout: Rollout, lags: Lags, check: Check) -> LaggingCluster:
        """``old`` rolled out, every pod Ready, every cache up to date."""
        cluster = cls(rollout=rollout, lags=lags, check=check)
        replicas = rollout.spec.replicas
        cluster.replicasets["old"] = ReplicaSet(
            "old", replicas, observed_generation=1, acted_generation=1, status_available=replicas
        )
        for _ in range(replicas):
            cluster._create_pod("old", ready_now=True)
        cluster._snapshot()
        plan = decide(rollout, cluster._observed(), now=cluster.now, revision="old")
        cluster._apply(plan)
        cluster._snapshot()
        return cluster

    # -- one reconcile pass and one tick ----------------------------------------------

    def step(self, revision: str, seconds: float | None = None) -> Plan:
        plan = decide(self.rollout, self._observed(), now=self.now, revision=revision)
        self._apply(plan)
        self.check(self, "after the pass")
        self._advance(seconds)
        return plan

    def _apply(self, plan: Plan) -> None:
        """What the reconciler writes: ReplicaSet specs, Service selectors, the route."""
        for revision in set(self.replicasets) | set(plan.replicas):
            wanted = plan.replicas.get(revision, 0)
            rs = self.replicasets.get(revision)
            if rs is None:
                if wanted > 0:
                    self.replicasets[revision] = ReplicaSet(revision, wanted, changed_at=self.tick)
                continue
            if rs.spec != wanted:
                rs.spec, rs.generation, rs.changed_at = wanted, rs.generation + 1, self.tick
        self.selectors.update(plan.service_selectors)
        canary = self.rollout.spec.strategy.canary
        if plan.route_weights is not None and canary is not None:
            stable, new = plan.status.stable_revision, plan.status.canary_revision
            weight = plan.route_weights.get(new, 0) if new and new != stable else 0
            self.route = {str(canary.stable_service): 100 - weight}
            self.route[str(canary.canary_service)] = weight
        status = plan.status
        if self.request is not None and status.last_handled_request == self.request.id:
            self.request = None
        self.rollout = self.rollout.model_copy(update={"status": status})

    def _advance(self, seconds: float | None) -> None:
        """Time passes: the ReplicaSet controller and the pods catch up, runs are judged."""
        self.tick += 1
        if seconds is not None:
            # Pods and lags count ticks; timers in status read the clock.
            self.tick_seconds = seconds
        for pod in list(self.pods):
            if pod.terminating and self.tick - (pod.deleted_at or 0) >= self.lags.terminate_after:
                self.pods.remove(pod)
            elif pod.ready_since is None and pod.ready_at is not None and self.tick >= pod.ready_at:
                pod.ready_since = self.now
        for rs in self.replicasets.values():
            if (
                rs.acted_generation < rs.generation
                and self.tick - rs.changed_at >= self.lags.rs_lag
            ):
                self._reconcile_replicaset(rs)
                self.check(self, f"after the ReplicaSet controller acted on {rs.revision}")
            self._report_status(rs)
        self._judge_runs()
        self._snapshot()
        self.check(self, "after a tick")

    def _reconcile_replicaset(self, rs: ReplicaSet) -> None:
        mine = [p for p in self.pods if p.revision == rs.revision and not p.terminating]
        for _ in range(rs.spec - len(mine)):
            self._create_pod(rs.revision)
        if len(mine) > rs.spec:
            # The ReplicaSet controller deletes not-Ready pods first, then the newest.
            order = sorted(mine, key=lambda p: (p.ready_since is not None, -p.created))
            for pod in order[: len(mine) - rs.spec]:
                pod.deleted_at = self.tick
        rs.acted_generation = rs.generation

    def _report_status(self, rs: ReplicaSet) -> None:
        """Status as written when the controller acted, visible ``status_lag`` ticks on."""
        available = sum(
            1 for p in self.pods if p.revision == rs.revision and p.ready_since is not None
        )  # counts terminating pods too, as a status written before they went does
        rs.status_history.append((self.tick, rs.acted_generation, available))
        due = [h for h in rs.status_history if self.tick - h[0] >= self.lags.status_lag]
        if due:
            _, rs.observed_generation, rs.status_available = due[-1]

    def _create_pod(self, revision: str, *, ready_now: bool = False) -> None:
        self._seq += 1
        never = revision in self.broken or revision in self.crashing
        pod = Pod(
            name=f"{revision}-{self._seq}",
            revision=revision,
            created=self._seq,
            ready_at=None if never else self.tick + self.lags.ready_after,
            ready_since=self.now if ready_now else None,
        )
        self.pods.append(pod)

    def _judge_runs(self) -> None:
        runs = []
        for run in self.status.analysis_runs:
            if run.phase == "Running" and self.verdict is not None:
                run = run.model_copy(
                    update={
                        "phase": self.verdict,
                        "metrics": [MetricResult(name="m", phase=self.verdict, message="m")],
                    }
                )
            runs.append(run)
        status = self.status.model_copy(update={"analysis_runs": runs})
        self.rollout = self.rollout.model_copy(update={"status": status})

    # -- what the controller's caches show --------------------------------------------

    def _snapshot(self) -> None:
        """What the caches can show from now on (built fresh: nothing shared)."""
        statuses = {
            rs.revision: {
                "observedGeneration": rs.observed_generation,
                "availableReplicas": rs.status_available,
            }
            for rs in self.replicasets.values()
        }
        services = {
            name: {"spec": {"selector": {REVISION_LABEL: revision}}}
            for name, revision in self.selectors.items()
        }
        route = None
        if self.route is not None:
            backends = [{"name": name, "weight": w} for name, w in self.route.items()]
            route = {"spec": {"rules": [{"backendRefs": backends}]}}
        self.history.append(
            {
                "statuses": statuses,
                "pods": [self._pod_object(p) for p in self.pods],
                "services": services,
                "route": route,
            }
        )

    def _pod_object(self, pod: Pod) -> dict[str, Any]:
        ready = pod.ready_since is not None
        meta: dict[str, Any] = {
            "name": pod.name,
            "labels": {ROLLOUT_LABEL: "shop", REVISION_LABEL: pod.revision},
        }
        if pod.terminating:
            meta["deletionTimestamp"] = timestamp(self.now)
        condition: dict[str, Any] = {"type": "Ready", "status": "True" if ready else "False"}
        if pod.ready_since is not None:
            condition["lastTransitionTime"] = timestamp(pod.ready_since)
        restarts = 5 if pod.revision in self.crashing else 0
        return {
            "metadata": meta,
            "status": {
                "phase": "Running",
                "conditions": [condition],
                "containerStatuses": [{"name": "app", "restartCount": restarts}],
            },
        }

    def _observed(self) -> Any:
        # Caches never go back in time: at most cache_lag ticks behind, never older
        # than the view of the previous pass.
        self._seen = max(self._seen, len(self.history) - 1 - self.lags.cache_lag)
        view = self.history[self._seen]
        replicasets: list[dict[str, Any]] = [
            {
                "metadata": {
                    "name": f"shop-{rs.revision}",
                    "labels": {ROLLOUT_LABEL: "shop", REVISION_LABEL: rs.revision},
                    "generation": rs.generation,
                },
                "spec": {"replicas": rs.spec},
                "status": view["statuses"].get(rs.revision, {}),
            }
            for rs in self.replicasets.values()
        ]
        annotations = dict(self.rollout.metadata.annotations)
        if self.request is not None:
            annotations[REQUEST_ANNOTATION] = self.request.to_annotation()
        rollout = self.rollout.model_copy(
            update={
                "metadata": self.rollout.metadata.model_copy(update={"annotations": annotations})
            }
        )
        return observe(
            rollout,
            status=self.status,
            replicasets=replicasets,
            pods=view["pods"],
            services=view["services"],
            route=view["route"],
            now=self.now,
        )

    # -- what users feel ------------------------------------------------------------

    def serving(self, revision: str | None) -> int:
        """Pods of ``revision`` that could be serving: Ready, not terminating."""
        return sum(1 for p in self.pods if p.revision == revision and p.serving)

    def serving_total(self) -> int:
        return sum(1 for p in self.pods if p.serving)

    def existing_total(self) -> int:
        """Pods that exist and are not terminating (Ready or not)."""
        return sum(1 for p in self.pods if not p.terminating)

    def selected(self, service: str | None) -> str | None:
        return self.selectors.get(service) if service else None

    def set_spec(self, **changes: Any) -> None:
        spec = self.rollout.spec.model_copy(update=changes)
        self.rollout = self.rollout.model_copy(update={"spec": spec})


def weights(route: Mapping[str, int] | None) -> Mapping[str, int]:
    return route or {}
