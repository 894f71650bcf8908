"""``deployctl release-controller``: Releases in the management cluster, driven to the end.

The same shape as the operator (``controller.operator``): informers cache Releases and
ClusterTargets, every event only enqueues a ``namespace/name`` key, workers run one
``ReleaseReconciler`` pass per key (never two at once for one key), errors requeue with
per-key backoff and timers with the delay the pass returned. Only the holder of the
``deployctl-release-controller`` Lease runs workers (``controller.leader``, the
operator's elector); a standby keeps its caches warm. A leader that loses its Lease
exits, as the operator does, so no half-finished pass races the next leader.

Member clusters are never watched: each pass reads the members it needs
(``members.py``) and the reconciler asks to be called again after the poll interval.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from controller.informer import Informer
from controller.kube import (
    CLUSTER_TARGETS,
    RELEASES,
    Kube,
    Obj,
    Permanent,
    Transient,
    object_key,
)
from controller.leader import LeaderElector
from controller.metrics import (
    RECONCILE_DURATION,
    RECONCILE_ERRORS,
    RECONCILE_TOTAL,
    RELEASES_BY_PHASE,
)
from controller.queue import WorkQueue
from controller.release.members import MemberClients
from controller.release.reconciler import ReleaseReconciler
from controller.server import HealthServer

log = structlog.stdlib.get_logger(__name__)

RELEASE_PHASES = ("Progressing", "Waiting", "Succeeded", "Failed", "RollingBack", "RolledBack")


@dataclass(frozen=True)
class ReleaseControllerConfig:
    namespace: str | None = None
    """Watch Releases (and ClusterTargets, Secrets) in this namespace only; None: all."""
    workers: int = 2
    poll_interval: float = 10.0
    read_timeout: float = 4.0
    leader_elect: bool = True
    lease_namespace: str = "deployctl-system"
    lease_name: str = "deployctl-release-controller"
    identity: str = ""
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    probe_host: str = "0.0.0.0"
    probe_port: int = 8080
    drain_timeout: float = 30.0


class ReleaseController:
    def __init__(
        self,
        kube: Kube,
        config: ReleaseControllerConfig,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.kube = kube
        self.config = config
        self.queue = WorkQueue("releases")
        self.releases = Informer(kube, RELEASES, namespace=config.namespace)
        self.targets = Informer(kube, CLUSTER_TARGETS, namespace=config.namespace)
        self.members = MemberClients(kube, read_timeout=config.read_timeout)
        self.reconciler = ReleaseReconciler(
            kube,
            releases=self.releases,
            targets=self.targets,
            members=self.members,
            clock=clock,
            poll_interval=config.poll_interval,
        )
        self.server = HealthServer(config.probe_host, config.probe_port)
        self.elector: LeaderElector | None = None
        self._workers: list[threading.Thread] = []
        self._workers_lock = threading.Lock()
        self._stop = threading.Event()
        self.exit_code = 0
        self.releases.add_handler(self._enqueue_release)
        self.targets.add_handler(self._enqueue_namespace)

    def _informers(self) -> list[Informer]:
        return [self.releases, self.targets]

    def _enqueue_release(self, _type: str, obj: Obj) -> None:
        self.queue.add(object_key(obj))

    def _enqueue_namespace(self, _type: str, obj: Obj) -> None:
        """A ClusterTarget changed: look again at the Releases of its namespace."""
        for key in self.releases.keys(obj.get("metadata", {}).get("namespace")):
            self.queue.add(key)

    # ------------------------------------------------------------------ running

    def run(self, stop: threading.Event | None = None) -> int:
        self._stop = stop or self._stop
        self.server.add_liveness_check("informers", lambda: all(i.alive for i in self._informers()))
        self.server.add_readiness_check(
            "synced", lambda: all(i.has_synced() for i in self._informers())
        )
        self.server.start()
        for informer in self._informers():
            informer.start()
        for informer in self._informers():
            informer.wait_for_sync()
        log.info("caches synced", releases=len(self.releases.keys()))
        if self.config.leader_elect:
            self.elector = LeaderElector(
                self.kube,
                namespace=self.config.lease_namespace,
                name=self.config.lease_name,
                identity=self.config.identity or f"{socket.gethostname()}_{os.getpid()}",
                lease_duration=self.config.lease_duration,
                renew_deadline=self.config.renew_deadline,
                retry_period=self.config.retry_period,
                on_started_leading=self._start_workers,
                on_stopped_leading=self._lost_leadership,
            )
            self.server.add_readiness_check("leader-election", self.elector.healthy)
            self.elector.start()
        else:
            self._start_workers()
        while not self._stop.wait(5.0):
            self._update_phase_gauge()
        self.shutdown()
        return self.exit_code

    def request_stop(self) -> None:
        self._stop.set()

    def shutdown(self) -> None:
        log.info("shutting down: finishing in-flight passes")
        self._stop_workers()
        if self.elector is not None:
            self.elector.stop(release=True)
        for informer in self._informers():
            informer.stop()
        self.members.close()
        self.server.stop()
        log.info("stopped")

    def _start_workers(self) -> None:
        with self._workers_lock:
            if self._workers:
                return
            self.queue = self.queue if not self.queue.shutting_down else WorkQueue("releases")
            for key in self.releases.keys():
                self.queue.add(key)
            for index in range(self.config.workers):
                worker = threading.Thread(target=self._work, name=f"release-{index}", daemon=True)
                worker.start()
                self._workers.append(worker)
            log.info("reconciling releases", workers=self.config.workers)

    def _stop_workers(self) -> None:
        with self._workers_lock:
            if not self.queue.shutdown(drain=True, timeout=self.config.drain_timeout):
                log.warning("in-flight passes did not finish in time")
            for worker in self._workers:
                worker.join(timeout=self.config.drain_timeout)
            self._workers = []

    def _lost_leadership(self) -> None:
        if self._stop.is_set():
            return
        log.error("lost leadership; exiting")
        self.exit_code = 1
        self._stop.set()

    def _work(self) -> None:
        while True:
            key = self.queue.get(timeout=1.0)
            if key is None:
                if self.queue.shutting_down:
                    return
                continue
            try:
                self._process(key)
            finally:
                self.queue.done(key)

    def _process(self, key: str) -> None:
        started = time.monotonic()
        namespace, _, name = key.partition("/")
        bound = log.bind(namespace=namespace, release=name)
        try:
            outcome = self.reconciler.reconcile(key)
        except (Transient, Permanent) as exc:
            delay = self.queue.add_rate_limited(key)
            kind = "transient" if isinstance(exc, Transient) else "permanent"
            RECONCILE_ERRORS.labels(kind=kind).inc()
            RECONCILE_TOTAL.labels(result="error").inc()
            bound.info("release pass failed; requeued", error=str(exc), retry_in=delay)
        except Exception:
            delay = self.queue.add_rate_limited(key)
            RECONCILE_ERRORS.labels(kind="unexpected").inc()
            RECONCILE_TOTAL.labels(result="error").inc()
            bound.exception("release pass crashed; other releases are unaffected", retry_in=delay)
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
        counts = Counter(
            str((obj.get("status") or {}).get("phase") or "Unknown") for obj in self.releases.list()
        )
        for phase in (*RELEASE_PHASES, "Unknown"):
            RELEASES_BY_PHASE.labels(phase=phase).set(counts.get(phase, 0))
