"""The in-cluster operator: informers, a work queue, workers, leader election, probes.

``deployctl controller`` builds an ``Operator`` and calls ``run``. Informers keep local
caches of Rollouts, AnalysisTemplates, the ReplicaSets and pods we own (by label),
Services, the traffic routers' objects and Deployments (a Rollout's workloadRef);
every watch event only enqueues a ``namespace/name`` key. Workers take keys and run
one reconcile each (never two workers on one key); errors requeue with per-key
backoff, timers requeue after the delay the reconcile returned.
Every replica runs workers on the Rollouts of the shards whose Leases it holds
(``controller.shards``; one shard by default, whose holder is the single active
controller and whose Lease is the leader Lease): its queue admits only their keys, a
worker drops a key whose shard it no longer holds, the status write is fenced the same
way, and a shard gained re-queues its Rollouts (they resume from status). A replica
holding nothing keeps its caches warm for a fast takeover. Every status write records
the replica that made it (``status.controller``).

The controller's own namespace (``lease_namespace``: the Lease, the cluster-wide
DeliveryPolicies, the webhook Secrets) is watched for policies even when the Rollouts
watched live elsewhere (the namespaced install runs in its own namespace). Namespaces
are watched in the cluster-wide install, for policies' ``namespaceSelector``.

``/healthz`` fails when a worker thread died or one reconcile has run longer than
``workerStuck`` (``controller.limits``): the budgets keep a pass far shorter, so such
a worker is wedged, and a restart (the standby takes over) is the way out.

Shutdown (SIGTERM): stop taking keys, finish the in-flight reconciles, release the lease
so a standby takes over at once, stop informers and the probe server.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import structlog

from controller.admission import ApprovalAdmission
from controller.analysis.addresses import AddressPolicy, IPAddress, normalise
from controller.analysis.batch import Batches
from controller.analysis.budget import budget_left
from controller.analysis.jobs import JobChecks
from controller.analysis.prometheus import PrometheusMeasurer
from controller.analysis.rulesource import ConfigMapData, ConfigMapRules
from controller.analysis.run import AnalysisEngine
from controller.analysis.web import ServiceAddressMode, WebChecks
from controller.cache import Cache, UnionCache
from controller.informer import DELETED, MODIFIED, SYNC, Informer
from controller.kube import (
    ANALYSIS_TEMPLATES,
    CONTROLLER_REVISIONS,
    DAEMONSETS,
    DELIVERY_POLICIES,
    DEPLOYMENTS,
    DESTINATION_RULES,
    HTTPROUTES,
    INGRESSES,
    JOBS,
    NAMESPACES,
    NODES,
    PODS,
    REPLICASETS,
    ROLLOUTS,
    SERVICES,
    STATEFULSETS,
    VIRTUAL_SERVICES,
    KindRef,
    Kube,
    KubeError,
    NotFound,
    Permanent,
    Transient,
    object_key,
)
from controller.limits import WORKER_STUCK
from controller.metrics import (
    RECONCILE_DURATION,
    RECONCILE_ERRORS,
    RECONCILE_TOTAL,
    ROLLOUT_EVENTS,
    ROLLOUTS_BY_PHASE,
)
from controller.names import ROLLOUT_LABEL
from controller.notify import Notifier, secret_resolver
from controller.policy_gate import PolicyGate
from controller.queue import WorkQueue
from controller.reconciler import Caches, Fenced, Reconciler
from controller.roster import LeaseRoster
from controller.server import HealthServer
from controller.shards import ShardElector
from controller.stateful import CONTROLLER_REVISION_LABEL
from controller.tenancy import ControllerIdentity

log = structlog.stdlib.get_logger(__name__)

Obj = dict[str, Any]
REQUIRES_INDEX = "requires"
WORKLOAD_INDEX = "workload"
PHASES = ("Progressing", "Paused", "Healthy", "Degraded", "RolledBack")


@dataclass(frozen=True)
class OperatorConfig:
    namespace: str | None = None
    """Watch one namespace only (namespaced install); None: all namespaces."""
    workers: int = 4
    prometheus_url: str = "http://prometheus.monitoring:9090"
    scrape_interval: float = 15.0
    """Prometheus's scrape interval (s): the step of compare metrics' range queries."""
    service_address: ServiceAddressMode = "dns"
    """How web checks reach a Service: cluster DNS, or a ready pod's IP (outside a cluster)."""
    web_policy: AddressPolicy = AddressPolicy()
    """What web checks may reach (--web-allow-cidrs, --web-deny-cidrs, --web-allow-namespaces);
    the API server's own addresses are added at start."""
    leader_elect: bool = True
    lease_namespace: str = "deployctl-system"
    """The controller's own namespace: its Lease, cluster-wide policies, webhook Secrets."""
    lease_name: str = "deployctl-controller"
    shards: int = 1
    """Active-active replicas over this many shard Leases; 1: one leader does all."""
    service_account: str = "deployctl-controller"
    """The controller's ServiceAccount (in lease_namespace): no Rollout's pods may use it."""
    identity: str = ""
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    probe_host: str = "0.0.0.0"
    probe_port: int = 8080
    drain_timeout: float = 30.0
    stuck_after: float = WORKER_STUCK.value


def default_identity() -> str:
    return f"{socket.gethostname()}_{os.getpid()}"


class Operator:
    def __init__(
        self,
        kube: Kube,
        config: OperatorConfig,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.kube = kube
        self.config = config
        self.identity = config.identity or default_identity()
        # This replica's share of the shards (all of one, or none, with a single shard);
        # None: no election (a lone controller acts on everything).
        self.shard_elector: ShardElector | None = None
        if config.leader_elect:
            self.shard_elector = ShardElector(
                kube,
                namespace=config.lease_namespace,
                name=config.lease_name,
                identity=self.identity,
                shards=config.shards,
                roster=LeaseRoster(kube) if config.shards > 1 else None,
                lease_duration=config.lease_duration,
                renew_deadline=config.renew_deadline,
                retry_period=config.retry_period,
                on_gained=self._requeue_shards,
                quiescent=self._shard_quiescent,
            )
        self.queue = self._new_queue()
        ns = config.namespace
        self.rollouts = Informer(kube, ROLLOUTS, namespace=ns)
        self.templates = Informer(kube, ANALYSIS_TEMPLATES, namespace=ns)
        # What a pass lists of its own (ReplicaSets, pods, check Jobs) is found by the
        # rollout label's index, not by a scan of every cached object.
        by_rollout = (ROLLOUT_LABEL,)
        self.replicasets = Informer(
            kube, REPLICASETS, namespace=ns, label_selector=ROLLOUT_LABEL, index_labels=by_rollout
        )
        self.pods = Informer(
            kube, PODS, namespace=ns, label_selector=ROLLOUT_LABEL, index_labels=by_rollout
        )
        # Check Jobs (job metrics, hooks) the controller created, labelled like its pods.
        self.jobs = Informer(
            kube, JOBS, namespace=ns, label_selector=ROLLOUT_LABEL, index_labels=by_rollout
        )
        self.services = Informer(kube, SERVICES, namespace=ns)
        # Deployments a Rollout's spec.workloadRef names: their template is its revision.
        self.deployments = Informer(kube, DEPLOYMENTS, namespace=ns)
        # StatefulSets a workloadRef names, and their pods: those carry the StatefulSet
        # controller's controller-revision-hash, never our rollout label.
        self.statefulsets = Informer(kube, STATEFULSETS, namespace=ns)
        self.workload_pods = Informer(
            kube, PODS, namespace=ns, label_selector=CONTROLLER_REVISION_LABEL
        )
        # DaemonSets a workloadRef names; their newest ControllerRevision is the revision
        # they deliver.
        self.daemonsets = Informer(kube, DAEMONSETS, namespace=ns)
        self.controller_revisions = Informer(kube, CONTROLLER_REVISIONS, namespace=ns)
        self.routes: Informer | None = None
        if self._has_httproutes():
            self.routes = Informer(kube, HTTPROUTES, namespace=ns)
        # The other traffic routers' objects: Istio's where its CRDs are installed, and
        # Ingresses (built in) for the NGINX canary.
        self.virtualservices: Informer | None = None
        self.destinationrules: Informer | None = None
        if self._has_crd(VIRTUAL_SERVICES, "Istio CRDs not installed; no istio routing"):
            self.virtualservices = Informer(kube, VIRTUAL_SERVICES, namespace=ns)
            if self._has_crd(DESTINATION_RULES, "Istio DestinationRule CRD not installed"):
                self.destinationrules = Informer(kube, DESTINATION_RULES, namespace=ns)
        self.ingresses: Informer | None = None
        if self._has_crd(INGRESSES, "cannot list Ingresses; no nginx routing"):
            self.ingresses = Informer(kube, INGRESSES, namespace=ns)
        # The cluster-wide default policy, and the Secrets holding webhook URLs, live in
        # the controller's own namespace.
        self.controller_namespace = config.lease_namespace
        self.policies: Informer | None = None
        self.own_policies: Informer | None = None
        if self._has_crd(DELIVERY_POLICIES, "DeliveryPolicy CRD not installed; no policy"):
            self.policies = Informer(kube, DELIVERY_POLICIES, namespace=ns)
            if ns is not None and ns != self.controller_namespace:
                self.own_policies = Informer(
                    kube, DELIVERY_POLICIES, namespace=self.controller_namespace
                )
        policy_cache: Cache | None = self.policies
        if self.policies is not None and self.own_policies is not None:
            policy_cache = UnionCache(self.policies, self.own_policies)
        # Namespace labels (policies' namespaceSelector) need a ClusterRole; the
        # namespaced install has none, and matches every namespaceSelector instead.
        self.namespaces: Informer | None = None
        if ns is None:
            self.namespaces = Informer(kube, NAMESPACES)
        # Node labels (a DaemonSet canary's canaryNodeSelector): cluster-wide install only;
        # the namespaced one orders a DaemonSet's Nodes by name alone.
        self.nodes: Informer | None = None
        if ns is None:
            self.nodes = Informer(kube, NODES)
        self.notifier = Notifier(
            secret_resolver(lambda ns, name: kube.read_secret_annotated(ns, name))
        )
        self.reconciler = Reconciler(
            kube,
            Caches(
                rollouts=self.rollouts,
                templates=self.templates,
                replicasets=self.replicasets,
                pods=self.pods,
                services=self.services,
                routes=self.routes,
                policies=policy_cache,
                virtualservices=self.virtualservices,
                destinationrules=self.destinationrules,
                ingresses=self.ingresses,
                deployments=self.deployments,
                statefulsets=self.statefulsets,
                workload_pods=self.workload_pods,
                daemonsets=self.daemonsets,
                controller_revisions=self.controller_revisions,
                nodes=self.nodes,
            ),
            engine=AnalysisEngine(
                PrometheusMeasurer(default_address=config.prometheus_url),
                # The presets' queries of all runs measured at one moment go as one.
                batches=Batches(),
                scrape_interval=config.scrape_interval,
                jobs=JobChecks(kube, jobs=self.jobs, pods=self.pods, rollouts=self.rollouts),
                rules=ConfigMapRules(
                    lambda ns, name: ConfigMapData(*kube.read_configmap_version(ns, name))
                ),
                secrets=kube.read_secret,
                web=WebChecks(
                    secrets=kube.read_secret,
                    services=self.services,
                    pods=self.pods,
                    service_address=config.service_address,
                    policy=replace(
                        config.web_policy,
                        apiserver=config.web_policy.apiserver | apiserver_addresses(kube.server),
                    ),
                ),
            ),
            clock=clock,
            policy=PolicyGate(
                policies=policy_cache,
                rollouts=self.rollouts,
                controller_namespace=self.controller_namespace,
                notifier=self.notifier,
                namespaces=self.namespaces,
                approvals_verified=ApprovalAdmission(kube).verified,
                budgets=partial(
                    budget_left, PrometheusMeasurer(default_address=config.prometheus_url)
                ),
            ),
            identity=ControllerIdentity(self.controller_namespace, config.service_account),
            writer=self.identity,
            fence=self.may_act,
        )
        self.server = HealthServer(config.probe_host, config.probe_port)
        self._workers: list[threading.Thread] = []
        self._workers_lock = threading.Lock()
        self.progress = WorkerProgress(stuck_after=config.stuck_after)
        self._stop = threading.Event()
        self.exit_code = 0
        self._wire_handlers()

    # ------------------------------------------------------------------ shards

    def may_act(self, key: str) -> bool:
        """Whether this replica may act on the Rollout ``key`` now (always, unsharded)."""
        return self.shard_elector is None or self.shard_elector.owns_key(key)

    def _new_queue(self) -> WorkQueue:
        if self.shard_elector is None:
            return WorkQueue("rollouts")
        return WorkQueue("rollouts", admit=self.may_act)

    def _requeue_shards(self, shards: frozenset[int]) -> None:
        """Shards just gained: their Rollouts, from the cache, resume from their status."""
        elector = self.shard_elector
        if elector is None:
            return
        for key in self.rollouts.keys():
            if elector.shard_of(key) in shards:
                self.queue.add(key)

    def _shard_quiescent(self, shard: int) -> bool:
        """No pass of ``shard`` in flight: its Lease may be handed back."""
        elector = self.shard_elector
        return elector is None or all(
            elector.shard_of(key) != shard for key in self.queue.processing()
        )

    # ------------------------------------------------------------------ wiring

    def _has_httproutes(self) -> bool:
        """HTTPRoutes are watched only where the Gateway API CRDs are installed."""
        try:
            self.kube.list_objects(HTTPROUTES, self.config.namespace)
        except NotFound:
            log.info("Gateway API HTTPRoute CRD not installed; traffic routing by replicas only")
            return False
        except KubeError as exc:
            log.warning("cannot list HTTPRoutes; not watching them", error=str(exc))
            return False
        return True

    def _has_crd(self, kind: KindRef, missing: str) -> bool:
        try:
            self.kube.list_objects(kind, self.config.namespace)
        except NotFound:
            log.info(missing)
            return False
        except KubeError as exc:
            log.warning(f"cannot list {kind.resource}; not watching them", error=str(exc))
            return False
        return True

    def _informers(self) -> list[Informer]:
        found = [
            self.rollouts,
            self.templates,
            self.replicasets,
            self.pods,
            self.jobs,
            self.services,
            self.deployments,
            self.statefulsets,
            self.workload_pods,
            self.daemonsets,
            self.controller_revisions,
        ]
        optional = (
            self.routes,
            self.virtualservices,
            self.destinationrules,
            self.ingresses,
            self.policies,
            self.own_policies,
            self.namespaces,
            self.nodes,
        )
        return found + [informer for informer in optional if informer is not None]

    def _wire_handlers(self) -> None:
        self.rollouts.add_index(REQUIRES_INDEX, _requires)
        self.rollouts.add_handler(self._enqueue_rollout)
        self.rollouts.add_index(WORKLOAD_INDEX, _workload)
        self.deployments.add_handler(self._enqueue_workload_of)
        self.statefulsets.add_handler(self._enqueue_workload_of)
        self.daemonsets.add_handler(self._enqueue_workload_of)
        self.workload_pods.add_handler(self._enqueue_workload_of_owned)
        # A DaemonSet's revision is its newest ControllerRevision: the pass its template
        # change started may have run before the revision reached this cache.
        self.controller_revisions.add_handler(self._enqueue_workload_of_owned)
        for policies in (self.policies, self.own_policies):
            if policies is not None:
                policies.add_handler(self._enqueue_policy_scope)
        if self.namespaces is not None:
            self.namespaces.add_handler(self._enqueue_labelled_namespace)
        for owned in (self.replicasets, self.pods, self.jobs):
            owned.add_handler(self._enqueue_owner)
        routers = (self.routes, self.virtualservices, self.destinationrules, self.ingresses)
        for shared in (self.templates, self.services, *routers):
            if shared is not None:
                shared.add_handler(self._enqueue_namespace)

    def _enqueue_rollout(self, event_type: str, obj: Obj) -> None:
        key = object_key(obj)
        if event_type == DELETED:
            self.reconciler.status_writes.forget(obj)
        if event_type == MODIFIED and self.reconciler.status_writes.is_echo(obj):
            # Only our own status write coming back: the pass that wrote it knew all this.
            ROLLOUT_EVENTS.labels(handled="echo").inc()
        else:
            ROLLOUT_EVENTS.labels(handled="queued").inc()
            self.queue.add(key)
        # Rollouts gated on this one (spec.requires) may now be free to start: found by
        # index, since this runs on every change of every rollout.
        for other in self.rollouts.keys_by_index(REQUIRES_INDEX, key):
            self.queue.add(other)

    def _enqueue_policy_scope(self, _type: str, obj: Obj) -> None:
        """A policy changed: its namespace's rollouts, or all for the cluster default."""
        namespace = obj.get("metadata", {}).get("namespace")
        scope = None if namespace == self.controller_namespace else namespace
        for key in self.rollouts.keys(scope):
            self.queue.add(key)

    def _enqueue_labelled_namespace(self, event_type: str, obj: Obj) -> None:
        """A Namespace's labels may change which policies apply: its Rollouts, again."""
        if event_type == SYNC:
            return  # a resync changes nothing; the rollouts have their own resync
        for key in self.rollouts.keys(obj.get("metadata", {}).get("name")):
            self.queue.add(key)

    def _enqueue_owner(self, _type: str, obj: Obj) -> None:
        meta = obj.get("metadata", {})
        owner = meta.get("labels", {}).get(ROLLOUT_LABEL)
        if owner:
            self.queue.add(f"{meta.get('namespace')}/{owner}")

    def _enqueue_workload_of(self, _type: str, obj: Obj) -> None:
        """A Deployment changed: the Rollouts whose workloadRef names it (by index, since
        every Deployment of the namespace is watched)."""
        for key in self.rollouts.keys_by_index(WORKLOAD_INDEX, object_key(obj)):
            self.queue.add(key)

    def _enqueue_workload_of_owned(self, _type: str, obj: Obj) -> None:
        """A StatefulSet's or DaemonSet's pod or ControllerRevision changed: the Rollouts
        whose workloadRef names its owner."""
        meta = obj.get("metadata") or {}
        for owner in meta.get("ownerReferences") or []:
            if owner.get("kind") in ("StatefulSet", "DaemonSet"):
                key = f"{meta.get('namespace')}/{owner.get('name')}"
                for rollout in self.rollouts.keys_by_index(WORKLOAD_INDEX, key):
                    self.queue.add(rollout)

    def _enqueue_namespace(self, _type: str, obj: Obj) -> None:
        """A template, Service or router object changed: look again at its namespace's
        rollouts (one that named a missing object may now go on)."""
        namespace = obj.get("metadata", {}).get("namespace")
        for key in self.rollouts.keys(namespace):
            self.queue.add(key)

    # ------------------------------------------------------------------ running

    def run(self, stop: threading.Event | None = None) -> int:
        """Run until ``stop`` is set; returns the exit code."""
        self._stop = stop or self._stop
        self.server.add_liveness_check("informers", lambda: all(i.alive for i in self._informers()))
        self.server.add_liveness_check("workers", self.workers_progress)
        self.server.add_readiness_check(
            "synced", lambda: all(i.has_synced() for i in self._informers())
        )
        self.server.start()
        for informer in self._informers():
            informer.start()
        for informer in self._informers():
            informer.wait_for_sync()
        log.info("caches synced", rollouts=len(self.rollouts.keys()))
        self._start_workers()
        if self.shard_elector is not None:
            self.server.add_readiness_check("shard-election", self.shard_elector.healthy)
            self.shard_elector.start()
        while not self._stop.wait(5.0):
            self._update_phase_gauge()
        self.shutdown()
        return self.exit_code

    def request_stop(self) -> None:
        self._stop.set()

    def shutdown(self) -> None:
        log.info("shutting down: finishing in-flight reconciles")
        self._stop_workers()
        if self.shard_elector is not None:
            self.shard_elector.stop(release=True)
        for informer in self._informers():
            informer.stop()
        self.notifier.close()
        self.server.stop()
        log.info("stopped")

    def _start_workers(self) -> None:
        with self._workers_lock:
            if self._workers:
                return
            self.queue = self.queue if not self.queue.shutting_down else self._new_queue()
            for key in self.rollouts.keys():
                self.queue.add(key)
            for index in range(self.config.workers):
                worker = threading.Thread(target=self._work, name=f"worker-{index}", daemon=True)
                worker.start()
                self._workers.append(worker)
            log.info("workers started", workers=self.config.workers)

    def _stop_workers(self) -> None:
        with self._workers_lock:
            drained = self.queue.shutdown(drain=True, timeout=self.config.drain_timeout)
            if not drained:
                log.warning("in-flight reconciles did not finish in time")
            for worker in self._workers:
                worker.join(timeout=self.config.drain_timeout)
            self._workers = []

    def workers_progress(self) -> bool:
        """Liveness: every started worker is alive and none is stuck in one reconcile."""
        return self.progress.healthy(list(self._workers))

    def _work(self) -> None:
        name = threading.current_thread().name
        while True:
            key = self.queue.get(timeout=1.0)
            if key is None:
                if self.queue.shutting_down:
                    return
                continue
            self.progress.begin(name, key)
            try:
                self._process(key)
            finally:
                self.progress.end(name)
                self.queue.done(key)

    def _process(self, key: str) -> None:
        if not self.may_act(key):
            # Its shard moved while the key waited: the new owner has it.
            self.queue.forget(key)
            return
        started = time.monotonic()
        try:
            outcome = self.reconciler.reconcile(key)
        except Fenced as exc:
            self.queue.forget(key)
            RECONCILE_TOTAL.labels(result="fenced").inc()
            _bound(key).info("pass dropped before its status write", reason=str(exc))
        except Transient as exc:
            delay = self.queue.add_rate_limited(key)
            RECONCILE_ERRORS.labels(kind="transient").inc()
            RECONCILE_TOTAL.labels(result="error").inc()
            _bound(key).info("requeued after a transient API error", error=str(exc), retry_in=delay)
        except Permanent as exc:
            # A 4xx from the apiserver (e.g. our RBAC is missing a verb): retrying at
            # full speed helps nobody, but the cause may be fixed, so back off.
            delay = self.queue.add_rate_limited(key)
            RECONCILE_ERRORS.labels(kind="permanent").inc()
            RECONCILE_TOTAL.labels(result="error").inc()
            _bound(key).warning("reconcile failed", error=str(exc), retry_in=delay)
        except Exception:
            delay = self.queue.add_rate_limited(key)
            RECONCILE_ERRORS.labels(kind="unexpected").inc()
            RECONCILE_TOTAL.labels(result="error").inc()
            _bound(key).exception(
                "reconcile crashed; other rollouts are unaffected", retry_in=delay
            )
        else:
            self.queue.forget(key)
            if outcome.requeue_after is not None:
                self.queue.add_after(key, outcome.requeue_after)
                RECONCILE_TOTAL.labels(result="requeue").inc()
            else:
                RECONCILE_TOTAL.labels(result="success").inc()
        finally:
            RECONCILE_DURATION.observe(time.monotonic() - started)

    def _update_phase_gauge(self) -> None:
        counts = self.rollouts.count(_phase)
        for phase in (*PHASES, "Unknown"):
            ROLLOUTS_BY_PHASE.labels(phase=phase).set(counts.get(phase, 0))


def _bound(key: str) -> Any:
    """The log with the rollout's namespace and name (bound only when a pass logs)."""
    namespace, _, name = key.partition("/")
    return log.bind(namespace=namespace, rollout=name)


def _phase(rollout: Obj) -> str:
    return str((rollout.get("status") or {}).get("phase") or "Unknown")


class WorkerProgress:
    """Which reconcile each worker runs and since when, for ``/healthz``.

    Unhealthy when a worker thread died or one reconcile has run longer than
    ``stuck_after`` (logged, naming the Rollout). Its own lock: the operator holds its
    workers' lock while they finish on shutdown.
    """

    def __init__(self, *, stuck_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stuck_after = stuck_after
        self.clock = clock
        self._lock = threading.Lock()
        self._busy: dict[str, tuple[str, float]] = {}

    def begin(self, worker: str, key: str) -> None:
        with self._lock:
            self._busy[worker] = (key, self.clock())

    def end(self, worker: str) -> None:
        with self._lock:
            self._busy.pop(worker, None)

    def stuck(self) -> dict[str, tuple[str, float]]:
        """worker -> (key, seconds) for reconciles running longer than ``stuck_after``."""
        now = self.clock()
        with self._lock:
            busy = dict(self._busy)
        return {
            worker: (key, now - since)
            for worker, (key, since) in busy.items()
            if now - since > self.stuck_after
        }

    def healthy(self, workers: list[threading.Thread]) -> bool:
        dead = [w.name for w in workers if not w.is_alive()]
        stuck = self.stuck()
        if dead or stuck:
            log.error(
                "workers make no progress",
                dead=dead,
                stuck={w: f"{key} for {seconds:.0f}s" for w, (key, seconds) in stuck.items()},
                limit=str(WORKER_STUCK),
            )
        return not dead and not stuck


def apiserver_addresses(
    server: str, environ: Mapping[str, str] | None = None
) -> frozenset[IPAddress]:
    """The API server's addresses as this process reaches it: its URL's host (resolved
    once, at start) and, in a pod, ``KUBERNETES_SERVICE_HOST``. Web checks may not reach
    them (``controller.analysis.addresses``)."""
    env = os.environ if environ is None else environ
    hosts = [urlsplit(server).hostname or "", env.get("KUBERNETES_SERVICE_HOST", "")]
    found: set[IPAddress] = set()
    for host in filter(None, hosts):
        try:
            found.add(normalise(ipaddress.ip_address(host)))
            continue
        except ValueError:
            pass
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError as exc:
            log.warning("cannot resolve the API server's name", host=host, error=str(exc))
            continue
        found |= {normalise(ipaddress.ip_address(str(info[4][0]))) for info in infos}
    return frozenset(found)


def _requires(rollout: Obj) -> tuple[str, ...]:
    """The Rollout key this one's promotion gate waits for (spec.requires), if any."""
    requires = (rollout.get("spec") or {}).get("requires") or {}
    value = requires.get("rollout")
    return (str(value),) if value else ()


def _workload(rollout: Obj) -> tuple[str, ...]:
    """The ``namespace/name`` of the Deployment this Rollout's workloadRef names, if any."""
    ref = (rollout.get("spec") or {}).get("workloadRef") or {}
    namespace = (rollout.get("metadata") or {}).get("namespace")
    return (f"{namespace}/{ref['name']}",) if ref.get("name") else ()
