"""Traffic for the sandbox: a steady request rate, split the way the cluster says.

Nothing in the sandbox proxies traffic (no kube-proxy, no gateway), so this generator does
the routing a real data path would: every ~0.5 s it reads either a Service (its selector
over the namespace's Ready pods) or a Gateway API HTTPRoute (the backendRefs' weights,
then each backend Service's Ready pods), and sends GETs straight to the pods' demo app at
``http://<podIP>:8080/``. The demo's Prometheus then sees exactly the split a canary step
asked for, and ``stats()`` counts the responses per revision and code.

Backends are chosen by smooth weighted round-robin (as nginx does) and pods round-robin,
not at random: a 90/10 route gives 10 % to the canary over every ten requests, so tests
and the demo measure the canary's own error rate, not sampling noise.

Used by ``tests.fixtures_workloads`` (the ``traffic`` factory) and the demo. The HTTPRoute
CRD it reads is shipped as ``HTTPROUTE_CRD`` (``sandbox/crds/gateway-httproute.yaml``);
install it with ``ControlPlane.install_crds([HTTPROUTE_CRD])``.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client import ApiException

from controller.names import REVISION_LABEL
from sandbox.demo_app import DEFAULT_PORT

log = logging.getLogger(__name__)

GATEWAY_GROUP = "gateway.networking.k8s.io"
# Newest first: the sandbox CRD serves both; a real cluster may have only one of them.
GATEWAY_VERSIONS = ("v1", "v1beta1")
HTTPROUTE_CRD = Path(__file__).resolve().parent / "crds" / "gateway-httproute.yaml"
NO_BACKEND = "no-backend"  # the code counted when a backend has no Ready pod
CONNECT_ERROR = "error"  # the code counted when a pod did not answer


@dataclass(frozen=True)
class Endpoint:
    """One Ready pod that can take a request."""

    ip: str
    port: int
    pod: str
    revision: str


@dataclass(frozen=True)
class Backend:
    """A weighted share of traffic and the Ready pods behind it."""

    service: str
    weight: int
    endpoints: tuple[Endpoint, ...]


@dataclass(frozen=True)
class RoutingView:
    """Where requests go, as read from the cluster at ``read_at`` (monotonic seconds)."""

    backends: tuple[Backend, ...]
    read_at: float


@dataclass(frozen=True)
class TrafficStats:
    """Responses per (revision, code); code is an HTTP status, ``error`` or ``no-backend``."""

    counts: Mapping[tuple[str, str], int] = field(default_factory=dict)
    skipped: int = 0  # ticks dropped because every worker was busy (a slow app)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def by_revision(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for (revision, _), count in self.counts.items():
            totals[revision] += count
        return dict(totals)

    def by_code(self, revision: str | None = None) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for (rev, code), count in self.counts.items():
            if revision is None or rev == revision:
                totals[code] += count
        return dict(totals)

    def share(self, revision: str) -> float:
        """The fraction of all counted requests that went to ``revision``."""
        total = self.total
        return self.by_revision().get(revision, 0) / total if total else 0.0

    def error_ratio(self, revision: str | None = None) -> float:
        """5xx, connection errors and missing backends over all, for one revision or all."""
        codes = self.by_code(revision)
        total = sum(codes.values())
        bad = sum(n for code, n in codes.items() if not code.isdigit() or code.startswith("5"))
        return bad / total if total else 0.0


def pod_is_ready(pod: Mapping[str, Any]) -> bool:
    meta, status = pod.get("metadata", {}), pod.get("status", {})
    if meta.get("deletionTimestamp") or not status.get("podIP"):
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def selector_string(selector: Mapping[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(selector.items()))


class _WeightedRoundRobin:
    """Smooth weighted round-robin: exact shares over every sum-of-weights picks."""

    def __init__(self) -> None:
        self._current: dict[str, int] = {}

    def pick(self, backends: Sequence[Backend]) -> Backend:
        total = sum(b.weight for b in backends)
        best: Backend | None = None
        for backend in backends:
            value = self._current.get(backend.service, 0) + backend.weight
            self._current[backend.service] = value
            if best is None or value > self._current[best.service]:
                best = backend
        assert best is not None
        self._current[best.service] -= total
        return best

    def forget_others(self, services: set[str]) -> None:
        for name in list(self._current):
            if name not in services:
                del self._current[name]


class TrafficGenerator:
    """Sends ``rate_per_second`` GETs to the pods behind a Service or an HTTPRoute."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        namespace: str,
        service: str | None = None,
        http_route: str | None = None,
        rate_per_second: float = 50.0,
        path: str = "/",
        port: int = DEFAULT_PORT,
        refresh_interval: float = 0.5,
        request_timeout: float = 5.0,
        max_in_flight: int = 32,
    ) -> None:
        if (service is None) == (http_route is None):
            raise ValueError("give exactly one of service= or http_route=")
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        # Typed as Any: replies are read as plain dicts (_preload_content=False), which the
        # generated signatures do not express.
        self.core: Any = client.CoreV1Api(api_client)
        self.custom: Any = client.CustomObjectsApi(api_client)
        self.namespace = namespace
        self.service = service
        self.http_route = http_route
        self.rate_per_second = rate_per_second
        self.path = path
        self.port = port
        self.refresh_interval = refresh_interval
        self.request_timeout = request_timeout
        self.max_in_flight = max_in_flight
        self._lock = threading.Lock()  # guards the counters below
        self._counts: Counter[tuple[str, str]] = Counter()
        self._skipped = 0
        self._in_flight = 0
        self._view = RoutingView(backends=(), read_at=float("-inf"))
        self._wrr = _WeightedRoundRobin()
        self._pod_cursor: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._route_version: str | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> TrafficGenerator:
        if self._thread is not None:
            return self
        self._pool = ThreadPoolExecutor(
            max_workers=self.max_in_flight, thread_name_prefix="traffic-request"
        )
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> TrafficGenerator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stats(self) -> TrafficStats:
        with self._lock:
            return TrafficStats(counts=dict(self._counts), skipped=self._skipped)

    def reset(self) -> None:
        """Forget the counts so far (e.g. after a weight change, to measure the new split)."""
        with self._lock:
            self._counts.clear()
            self._skipped = 0

    def view(self) -> RoutingView:
        return self._view

    # -- routing -----------------------------------------------------------------------

    def refresh(self) -> RoutingView:
        """Read the routing view now (also done by the loop every ``refresh_interval``)."""
        if self.service is not None:
            backends: tuple[Backend, ...] = (self._service_backend(self.service, 1),)
        else:
            backends = tuple(
                self._service_backend(name, weight) for name, weight in self._route_refs()
            )
        self._view = RoutingView(backends=backends, read_at=time.monotonic())
        self._wrr.forget_others({b.service for b in backends})
        return self._view

    def _route_refs(self) -> list[tuple[str, int]]:
        assert self.http_route is not None
        route = self._read_route(self.http_route)
        rules = route.get("spec", {}).get("rules") or []
        # The first rule is the catch-all a canary route has; matches are not evaluated.
        refs = (rules[0].get("backendRefs") or []) if rules else []
        weighted = []
        for ref in refs:
            if ref.get("kind", "Service") != "Service" or ref.get("group", "") not in ("", "core"):
                continue
            if ref.get("namespace", self.namespace) != self.namespace:
                continue  # cross-namespace refs need a ReferenceGrant; not modelled
            weight = int(ref.get("weight", 1))
            if weight > 0:
                weighted.append((str(ref["name"]), weight))
        return weighted

    def _read_route(self, name: str) -> dict[str, Any]:
        error: ApiException | None = None
        versions = (self._route_version,) if self._route_version else GATEWAY_VERSIONS
        for version in versions:
            try:
                route: dict[str, Any] = self.custom.get_namespaced_custom_object(
                    GATEWAY_GROUP, version, self.namespace, "httproutes", name
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise
                error = exc
                continue
            self._route_version = version
            return route
        assert error is not None
        raise error

    def _service_backend(self, name: str, weight: int) -> Backend:
        service = self._get_json(
            self.core.read_namespaced_service(name, self.namespace, _preload_content=False)
        )
        spec = service.get("spec", {})
        selector = dict(spec.get("selector") or {})
        port = self.port
        for service_port in spec.get("ports") or []:
            # A numeric targetPort is where the pods listen; a named one we cannot resolve.
            if isinstance(service_port.get("targetPort"), int):
                port = service_port["targetPort"]
                break
        if not selector:
            return Backend(service=name, weight=weight, endpoints=())
        pods = self._get_json(
            self.core.list_namespaced_pod(
                self.namespace, label_selector=selector_string(selector), _preload_content=False
            )
        )["items"]
        endpoints = tuple(
            Endpoint(
                ip=pod["status"]["podIP"],
                port=port,
                pod=pod["metadata"]["name"],
                revision=(pod["metadata"].get("labels") or {}).get(REVISION_LABEL, ""),
            )
            for pod in sorted(pods, key=lambda p: p["metadata"]["name"])
            if pod_is_ready(pod)
        )
        return Backend(service=name, weight=weight, endpoints=endpoints)

    @staticmethod
    def _get_json(response: Any) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(response.data)
        return parsed

    # -- sending -----------------------------------------------------------------------

    def _run(self) -> None:
        interval = 1.0 / self.rate_per_second
        next_tick = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now - self._view.read_at >= self.refresh_interval:
                try:
                    self.refresh()
                except Exception:  # noqa: BLE001 - keep the last view; retry next tick
                    log.warning("traffic: routing refresh failed", exc_info=True)
                    # Don't hammer a failing API on every tick.
                    self._view = RoutingView(self._view.backends, read_at=now)
            self._tick()
            next_tick += interval
            # Fixed schedule, not "sleep interval": the rate holds even when ticks are slow.
            delay = next_tick - time.monotonic()
            if delay < -1.0:
                next_tick = time.monotonic()  # we fell far behind (e.g. a paused VM): resync
            elif delay > 0:
                self._stop.wait(delay)

    def _tick(self) -> None:
        backends = [b for b in self._view.backends if b.weight > 0]
        if not backends:
            return  # nothing routable yet (route or service not created): send nothing
        backend = self._wrr.pick(backends)
        if not backend.endpoints:
            self._count("", NO_BACKEND)
            return
        cursor = self._pod_cursor.get(backend.service, 0)
        endpoint = backend.endpoints[cursor % len(backend.endpoints)]
        self._pod_cursor[backend.service] = cursor + 1
        with self._lock:
            if self._in_flight >= self.max_in_flight:
                self._skipped += 1
                return
            self._in_flight += 1
        assert self._pool is not None
        self._pool.submit(self._send, endpoint)

    def _send(self, endpoint: Endpoint) -> None:
        code = CONNECT_ERROR
        connection = http.client.HTTPConnection(
            endpoint.ip, endpoint.port, timeout=self.request_timeout
        )
        try:
            connection.request("GET", self.path)
            response = connection.getresponse()
            response.read()
            code = str(response.status)
        except (OSError, http.client.HTTPException):
            pass
        finally:
            connection.close()
            with self._lock:
                self._in_flight -= 1
        self._count(endpoint.revision, code)

    def _count(self, revision: str, code: str) -> None:
        with self._lock:
            self._counts[(revision, code)] += 1
