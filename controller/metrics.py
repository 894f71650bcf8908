"""The operator's Prometheus metrics, defined once and shared by every module.

Each metric is a module-level object in our own ``REGISTRY`` (not prometheus-client's
global one), so tests and a second controller in the same process never collide with
other libraries' collectors. ``controller.server`` serves ``REGISTRY`` on ``/metrics``.

Who writes what:

- ``controller.kube``: ``API_REQUESTS`` (one count per HTTP attempt, retries included).
- ``controller.queue``: ``QUEUE_DEPTH``, ``QUEUE_ADDS``, ``QUEUE_RETRIES``, ``QUEUE_WAIT``.
- ``controller.informer``: ``INFORMER_RELISTS``, ``INFORMER_WATCH_RESTARTS``.
- ``controller.operator``: ``ROLLOUT_EVENTS`` (queued, or an echo of our own write).
- ``controller.shards``: ``LEADER`` (shard 0's Lease), ``SHARDS_OWNED``, ``SHARD_HELD``
  (labelled by shard index: at most ``--shards`` series).
- the release controller (``controller/release/``): ``RELEASE_MEMBER_READS``,
  ``RELEASES_BY_PHASE``.
- the reconciler: ``RECONCILE_TOTAL``, ``RECONCILE_DURATION``, ``RECONCILE_ERRORS``,
  ``ROLLOUTS_BY_PHASE``, ``ROLLBACK_LATENCY``; the analysis loop: ``ANALYSIS_VERDICTS``.

Labels are bounded sets (verbs, resources, phases, verdicts, result kinds): never a
rollout name or a namespace, so cardinality does not grow with the cluster. The one
exception is the member cluster of ``RELEASE_MEMBER_READS``: ClusterTargets are few, and
"which cluster stopped answering" is the point of that metric.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

RECONCILE_TOTAL = Counter(
    "deployctl_reconcile",
    "Reconcile passes, by result (success, requeue, error; fenced: dropped before its "
    "status write because this replica no longer held the Rollout's shard).",
    ["result"],
    registry=REGISTRY,
)
RECONCILE_DURATION = Histogram(
    "deployctl_reconcile_duration_seconds",
    "Wall time of one reconcile pass.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
RECONCILE_ERRORS = Counter(
    "deployctl_reconcile_errors",
    "Reconcile passes that ended in an error, by kind (transient, permanent, unexpected).",
    ["kind"],
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "deployctl_workqueue_depth",
    "Keys ready to be processed (delayed keys are counted in deployctl_workqueue_waiting).",
    ["queue"],
    registry=REGISTRY,
)
QUEUE_WAITING = Gauge(
    "deployctl_workqueue_waiting",
    "Keys waiting for a delayed or rate-limited requeue.",
    ["queue"],
    registry=REGISTRY,
)
QUEUE_ADDS = Counter(
    "deployctl_workqueue_adds",
    "Keys added to the work queue (before de-duplication).",
    ["queue"],
    registry=REGISTRY,
)
QUEUE_WAIT = Histogram(
    "deployctl_workqueue_wait_seconds",
    "Time a ready key waited in the work queue for a worker (client-go's queue duration).",
    ["queue"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
QUEUE_RETRIES = Counter(
    "deployctl_workqueue_retries",
    "Rate-limited requeues (errors retried with per-key backoff).",
    ["queue"],
    registry=REGISTRY,
)
ROLLOUTS_BY_PHASE = Gauge(
    "deployctl_rollouts",
    "Rollouts known to this controller, by status.phase.",
    ["phase"],
    registry=REGISTRY,
)
ANALYSIS_VERDICTS = Counter(
    "deployctl_analysis_measurements",
    "Analysis measurements, by verdict (Successful, Failed, Inconclusive, Error).",
    ["verdict"],
    registry=REGISTRY,
)
ROLLBACK_LATENCY = Histogram(
    "deployctl_rollback_latency_seconds",
    "Time from the failed measurement that decided an abort to the rollback being applied.",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60, 120, 300, 600),
    registry=REGISTRY,
)
API_REQUESTS = Counter(
    "deployctl_api_requests",
    "Kubernetes API requests (every attempt), by verb, resource and HTTP code "
    "('error' when no response arrived).",
    ["verb", "resource", "code"],
    registry=REGISTRY,
)
ROLLOUT_EVENTS = Counter(
    "deployctl_rollout_events",
    "Rollout watch events, by what was done: queued for a pass, or skipped as the echo "
    "of this controller's own status write.",
    ["handled"],
    registry=REGISTRY,
)
INFORMER_RELISTS = Counter(
    "deployctl_informer_relists",
    "Full lists made by informers (start, 410 Gone), by resource.",
    ["resource"],
    registry=REGISTRY,
)
INFORMER_WATCH_RESTARTS = Counter(
    "deployctl_informer_watch_restarts",
    "Watch streams re-opened by informers, by resource and cause (ended, error, gone).",
    ["resource", "cause"],
    registry=REGISTRY,
)
LEADER = Gauge(
    "deployctl_leader",
    "1 while this process holds the leader Lease, else 0.",
    registry=REGISTRY,
)
SHARDS_OWNED = Gauge(
    "deployctl_shards_owned",
    "Shards this replica holds the Lease of and acts on (--shards; 0 with one shard).",
    registry=REGISTRY,
)
SHARD_HELD = Gauge(
    "deployctl_shard_owned",
    "1 for each shard this replica acts on (--shards), by shard index: which ones it owns.",
    ["shard"],
    registry=REGISTRY,
)
RELEASE_MEMBER_READS = Counter(
    "deployctl_release_member_reads",
    "Reads of a member cluster's Rollout by the release controller, by cluster "
    "(namespace/ClusterTarget) and outcome (ok, unreachable, refused).",
    ["cluster", "outcome"],
    registry=REGISTRY,
)
RELEASES_BY_PHASE = Gauge(
    "deployctl_releases",
    "Releases known to the release controller, by status.phase.",
    ["phase"],
    registry=REGISTRY,
)
