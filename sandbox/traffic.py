"""Traffic for the sandbox: a steady request rate, split the way the cluster says.

Nothing in the sandbox proxies traffic (no kube-proxy, no gateway, no mesh), so this
generator does the routing a real data path would: every ~0.5 s it reads one of

- a Service (its selector over the namespace's Ready pods);
- a Gateway API HTTPRoute (matches, backendRef weights, RequestMirror filters);
- an Istio VirtualService (http routes in order, weights, mirrors; subsets through the
  namespace's DestinationRules);
- a stable Ingress and the NGINX canary Ingress for its hosts (canary-by-header,
  canary-weight),

turns it into rules (``sandbox/dataplane.py``), resolves each backend Service to its
Ready pods and sends requests straight to the pods' demo app at ``http://<podIP>:8080/``.
Requests come in classes (``RequestClass``: method, path, headers, share), so a header
route or a mirror's match is exercised by the requests a test asks for. The demo's
Prometheus then sees exactly the split a canary step asked for; ``stats()`` counts the
responses per revision and code, per request class, and the mirrored copies apart.

Backends are chosen by smooth weighted round-robin (as nginx does) and pods round-robin,
not at random: a 90/10 route gives 10 % to the canary over every ten requests, so tests
and the demo measure the canary's own error rate, not sampling noise.

Used by ``tests.fixtures_workloads`` (the ``traffic`` factory) and the demo. The Gateway
API CRDs it reads are the published standard-channel ones (``sandbox/crds/gateway-api/``,
``GATEWAY_API_CRDS``), the Istio ones ``ISTIO_CRDS`` (``sandbox/crds/istio/``, as
published); install them with ``ControlPlane.install_crds``.
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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client import ApiException

from controller.names import REVISION_LABEL
from sandbox.dataplane import (
    BackendRef,
    RequestClass,
    Rule,
    first_match,
    httproute_rules,
    ingress_rules,
    virtualservice_rules,
)
from sandbox.demo_app import DEFAULT_PORT

log = logging.getLogger(__name__)

GATEWAY_GROUP = "gateway.networking.k8s.io"
# Newest first: the published CRD serves both; a real cluster may have only one of them.
GATEWAY_VERSIONS = ("v1", "v1beta1")
# Gateway API v1 standard channel as published (GatewayClass, Gateway, HTTPRoute,
# ReferenceGrant), unmodified: see sandbox/crds/gateway-api/README.md.
GATEWAY_API_DIR = Path(__file__).resolve().parent / "crds" / "gateway-api"
GATEWAY_API_CRDS: tuple[Path, ...] = tuple(sorted(GATEWAY_API_DIR.glob("*.yaml")))
HTTPROUTE_CRD_NAME = f"httproutes.{GATEWAY_GROUP}"
# They rely on CEL validation rules, so Kubernetes 1.25 or later (a 1.20 apiserver also
# rejects their `default: ""` values as null: measured).
GATEWAY_API_MIN_KUBERNETES = (1, 25)
ISTIO_GROUP, ISTIO_VERSION = "networking.istio.io", "v1"
ISTIO_CRD_DIR = Path(__file__).resolve().parent / "crds" / "istio"
ISTIO_CRDS: tuple[Path, ...] = tuple(sorted(ISTIO_CRD_DIR.glob("*.yaml")))
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
    """Where requests go, as read from the cluster at ``read_at`` (monotonic seconds).

    ``backends`` are those of the rule the first request class matches (the weighted
    split most tests look at); ``rules`` and ``endpoints`` (Ready pods by backend key)
    are the whole picture."""

    backends: tuple[Backend, ...]
    read_at: float
    rules: tuple[Rule, ...] = ()
    endpoints: Mapping[str, tuple[Endpoint, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class TrafficStats:
    """Responses per (revision, code); code is an HTTP status, ``error`` or ``no-backend``."""

    counts: Mapping[tuple[str, str], int] = field(default_factory=dict)
    skipped: int = 0  # ticks dropped because every worker was busy (a slow app)
    classes: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """(request class, revision) -> responses: where each class of request went."""
    mirrored: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """(revision, code) -> mirrored copies answered (not in ``counts``)."""

    def class_share(self, name: str, revision: str) -> float:
        """The fraction of the ``name`` requests that ``revision`` answered."""
        sent = sum(n for (cls, _), n in self.classes.items() if cls == name)
        return self.classes.get((name, revision), 0) / sent if sent else 0.0

    def class_total(self, name: str) -> int:
        return sum(n for (cls, _), n in self.classes.items() if cls == name)

    def mirrored_by_revision(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for (revision, _), count in self.mirrored.items():
            totals[revision] += count
        return dict(totals)

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
        virtual_service: str | None = None,
        ingress: str | None = None,
        requests: Sequence[RequestClass] = (RequestClass(),),
        rate_per_second: float = 50.0,
        path: str = "/",
        port: int = DEFAULT_PORT,
        refresh_interval: float = 0.5,
        request_timeout: float = 5.0,
        max_in_flight: int = 32,
    ) -> None:
        given = [x for x in (service, http_route, virtual_service, ingress) if x is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of service=, http_route=, virtual_service=, ingress="
            )
        if not requests or any(r.weight <= 0 for r in requests):
            raise ValueError("requests needs at least one class, each with a positive weight")
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        # Typed as Any: replies are read as plain dicts (_preload_content=False), which the
        # generated signatures do not express.
        self.core: Any = client.CoreV1Api(api_client)
        self.custom: Any = client.CustomObjectsApi(api_client)
        self.networking: Any = client.NetworkingV1Api(api_client)
        self.namespace = namespace
        self.service = service
        self.http_route = http_route
        self.virtual_service = virtual_service
        self.ingress = ingress
        self.requests = tuple(requests)
        self.rate_per_second = rate_per_second
        self.path = path
        self.port = port
        self.refresh_interval = refresh_interval
        self.request_timeout = request_timeout
        self.max_in_flight = max_in_flight
        self._lock = threading.Lock()  # guards the counters below
        self._counts: Counter[tuple[str, str]] = Counter()
        self._classes: Counter[tuple[str, str]] = Counter()
        self._mirrored: Counter[tuple[str, str]] = Counter()
        self._class_wrr = _WeightedRoundRobin()
        self._rule_wrr: dict[str, _WeightedRoundRobin] = {}
        self._mirror_credit: dict[str, float] = {}
        self._skipped = 0
        self._in_flight = 0
        # reset() starts a new epoch: a request sent before it is not counted after it.
        self._epoch = 0
        self._view = RoutingView(backends=(), read_at=float("-inf"))
        # When the installed view's read began: the loop and a caller may refresh at once,
        # and the read that began first must not replace the one that began later.
        self._view_began = float("-inf")
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
            return TrafficStats(
                counts=dict(self._counts),
                skipped=self._skipped,
                classes=dict(self._classes),
                mirrored=dict(self._mirrored),
            )

    def reset(self) -> None:
        """Forget the counts so far (e.g. after a weight change, to measure the new split)."""
        with self._lock:
            self._epoch += 1
            self._counts.clear()
            self._classes.clear()
            self._mirrored.clear()
            self._skipped = 0

    def view(self) -> RoutingView:
        return self._view

    # -- routing -----------------------------------------------------------------------

    def refresh(self) -> RoutingView:
        """Read the routing view now (also done by the loop every ``refresh_interval``)."""
        began = time.monotonic()
        rules = self._rules()
        refs = {ref.key: ref for rule in rules for ref, _ in rule.targets}
        refs.update({rule.mirror[0].key: rule.mirror[0] for rule in rules if rule.mirror})
        endpoints = {key: self._endpoints(ref) for key, ref in refs.items()}
        first = first_match(rules, self.requests[0])
        backends = tuple(
            Backend(service=ref.key, weight=weight, endpoints=endpoints[ref.key])
            for ref, weight in (first.targets if first is not None else ())
        )
        view = RoutingView(
            backends=backends, read_at=time.monotonic(), rules=tuple(rules), endpoints=endpoints
        )
        with self._lock:
            if began < self._view_began:
                return self._view  # a read that began later is installed already
            self._view_began = began
            self._view = view
        self._wrr.forget_others({b.service for b in backends})
        return view

    def _rules(self) -> list[Rule]:
        if self.service is not None:
            return [Rule("service", (), ((BackendRef(self.service), 1),))]
        if self.http_route is not None:
            route = self._read_route(self.http_route)
            return httproute_rules(route, namespace=self.namespace)
        if self.virtual_service is not None:
            vs = self.custom.get_namespaced_custom_object(
                ISTIO_GROUP, ISTIO_VERSION, self.namespace, "virtualservices", self.virtual_service
            )
            destination_rules = self.custom.list_namespaced_custom_object(
                ISTIO_GROUP, ISTIO_VERSION, self.namespace, "destinationrules"
            )["items"]
            return virtualservice_rules(
                vs, namespace=self.namespace, destination_rules=destination_rules
            )
        assert self.ingress is not None
        ingresses = self._get_json(
            self.networking.list_namespaced_ingress(self.namespace, _preload_content=False)
        )["items"]
        stable = next((i for i in ingresses if i["metadata"]["name"] == self.ingress), None)
        if stable is None:
            return []
        return ingress_rules(stable, ingresses)

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

    def _endpoints(self, ref: BackendRef) -> tuple[Endpoint, ...]:
        """The Ready pods behind a Service (narrowed by a subset's labels)."""
        service = self._get_json(
            self.core.read_namespaced_service(ref.service, self.namespace, _preload_content=False)
        )
        spec = service.get("spec", {})
        selector = {**dict(spec.get("selector") or {}), **dict(ref.labels)}
        port = self.port
        for service_port in spec.get("ports") or []:
            # A numeric targetPort is where the pods listen; a named one we cannot resolve.
            if isinstance(service_port.get("targetPort"), int):
                port = service_port["targetPort"]
                break
        if not spec.get("selector"):
            return ()
        pods = self._get_json(
            self.core.list_namespaced_pod(
                self.namespace, label_selector=selector_string(selector), _preload_content=False
            )
        )["items"]
        return tuple(
            Endpoint(
                ip=pod["status"]["podIP"],
                port=port,
                pod=pod["metadata"]["name"],
                revision=(pod["metadata"].get("labels") or {}).get(REVISION_LABEL, ""),
            )
            for pod in sorted(pods, key=lambda p: p["metadata"]["name"])
            if pod_is_ready(pod)
        )

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
                    # Don't hammer a failing API on every tick; keep routing as last read.
                    with self._lock:
                        self._view = replace(self._view, read_at=now)
            self._tick()
            next_tick += interval
            # Fixed schedule, not "sleep interval": the rate holds even when ticks are slow.
            delay = next_tick - time.monotonic()
            if delay < -1.0:
                next_tick = time.monotonic()  # we fell far behind (e.g. a paused VM): resync
            elif delay > 0:
                self._stop.wait(delay)

    def _tick(self) -> None:
        view = self._view
        request = self._class_wrr.pick(
            [Backend(service=r.name, weight=r.weight, endpoints=()) for r in self.requests]
        )
        klass = next(r for r in self.requests if r.name == request.service)
        rule = first_match(view.rules, klass)
        backends = [
            Backend(service=ref.key, weight=weight, endpoints=view.endpoints.get(ref.key, ()))
            for ref, weight in (rule.targets if rule is not None else ())
            if weight > 0
        ]
        if rule is None or not backends:
            return  # nothing routable yet (route or service not created): send nothing
        # One rotation per rule and request class: classes interleave in a fixed cycle,
        # and a rotation shared by them would hand every canary pick to one class.
        rotation = self._rule_wrr.setdefault(f"{rule.key}|{klass.name}", _WeightedRoundRobin())
        backend = rotation.pick(backends)
        if not backend.endpoints:
            self._count("", NO_BACKEND, klass=klass.name)
            return
        endpoint = self._next_endpoint(backend.service, backend.endpoints)
        mirror_to: Endpoint | None = None
        if rule.mirror is not None:
            # Deterministic, like the split: 40 % is exactly 2 copies in every 5 matches.
            ref, percent = rule.mirror
            credit = self._mirror_credit.get(f"{rule.key}|{klass.name}", 0.0) + percent
            if credit >= 100.0:
                credit -= 100.0
                targets = view.endpoints.get(ref.key, ())
                if targets:
                    mirror_to = self._next_endpoint(f"mirror:{ref.key}", targets)
            self._mirror_credit[f"{rule.key}|{klass.name}"] = credit
        for target, mirrored in ((endpoint, False), (mirror_to, True)):
            if target is None:
                continue
            with self._lock:
                if self._in_flight >= self.max_in_flight:
                    self._skipped += 1
                    return
                self._in_flight += 1
                epoch = self._epoch
            assert self._pool is not None
            self._pool.submit(self._send, target, klass, mirrored, epoch)

    def _next_endpoint(self, key: str, endpoints: tuple[Endpoint, ...]) -> Endpoint:
        cursor = self._pod_cursor.get(key, 0)
        self._pod_cursor[key] = cursor + 1
        return endpoints[cursor % len(endpoints)]

    def _send(self, endpoint: Endpoint, klass: RequestClass, mirrored: bool, epoch: int) -> None:
        code = CONNECT_ERROR
        connection = http.client.HTTPConnection(
            endpoint.ip, endpoint.port, timeout=self.request_timeout
        )
        try:
            connection.request(klass.method, klass.path, headers=dict(klass.headers))
            response = connection.getresponse()
            response.read()
            code = str(response.status)
        except (OSError, http.client.HTTPException):
            pass
        finally:
            connection.close()
            with self._lock:
                self._in_flight -= 1
        if mirrored:
            with self._lock:
                if epoch == self._epoch:
                    self._mirrored[(endpoint.revision, code)] += 1
        else:
            self._count(endpoint.revision, code, klass=klass.name, epoch=epoch)

    def _count(self, revision: str, code: str, *, klass: str, epoch: int | None = None) -> None:
        with self._lock:
            if epoch is not None and epoch != self._epoch:
                return  # sent before a reset(): it measured the routing before it
            self._counts[(revision, code)] += 1
            self._classes[(klass, revision)] += 1
