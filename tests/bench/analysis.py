"""Many canaries under Prometheus analysis at once, on one controller.

``count`` Rollouts (1 replica, steps ``setWeight 50`` → an analysis with the errorRate
preset: max 5%, 10 s window, every 2 s, 3 measurements, failureLimit 0) are first
deployed, then all given v2 at once; one in twenty v2s is bad (30% errors). Pods are
simulated by the node agent without processes, so their traffic comes from a synthetic
exporter: one HTTP endpoint the real Prometheus scrapes every second, exposing
``http_requests_total{namespace, revision, code}`` (the series the preset reads) for
every revision with a Ready pod, 10 requests/s per Ready pod, 30% of them 500 for a pod
whose env says ``DEMO_ERROR_RATE=0.3``. The controller reaches Prometheus through a
counting reverse proxy, so queries are counted as Prometheus received them.

Reported: queries/s to Prometheus while the canaries ran (batching makes it grow with
the number of distinct templates, one here, not with the number of Rollouts), the
controller's CPU and peak RSS, verdict latency (seen through a watch on the Rollouts),
and which canaries were rolled back: exactly the bad ones is the goal.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import watch as k8s_watch

from controller.names import REVISION_LABEL
from sandbox.node_agent import NodeAgent
from tests.bench.process import Controller, Progress, load_average, say
from tests.bench.workload import GROUP, VERSION, Cluster, error_rate_template, in_parallel, rollout
from tests.counting_proxy import CountingProxy
from tests.waiting import wait_until

STEPS: list[dict[str, Any]] = [
    {"setWeight": 50},
    {"analysis": {"templates": [{"name": "errors"}]}},
]
REQUESTS_PER_SECOND = 10.0  # per Ready pod: 20 requests (minRequests) in 2 s
BAD_ERROR_RATE = "0.3"
NAMESPACE = "bench-analysis"

# The official client's watch helper is untyped.
Watch: Any = k8s_watch.Watch
Sandbox = Callable[..., AbstractContextManager[tuple[Any, Any, k8s.ApiClient]]]


@dataclass
class AnalysisResult:
    canaries: int
    bad: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    promoted: int = 0
    first_deploy_seconds: float = 0.0
    seconds: float = 0.0  # v2 given to all → every canary promoted or rolled back
    load: float = 0.0
    queries: float = 0.0
    queries_by_kind: dict[str, float] = field(default_factory=dict)
    revisions_per_query: list[int] = field(default_factory=list)  # per grouped query
    scrapes_cut: int = 0  # exporter answers Prometheus hung up on (scrape timeout)
    longest_request: int = 0  # bytes of the longest query's request line (a long one is a POST)
    measurements: float = 0.0
    cpu: float = 0.0
    peak_rss_mib: float = 0.0
    # Seconds from a run first seen in status to its first verdict (a measurement not
    # Inconclusive) and to the run's own verdict, per canary.
    first_verdict: list[float] = field(default_factory=list)
    verdict_latency: list[float] = field(default_factory=list)
    # Bad canaries: seconds from the canary's first Ready pod (its first request) to the
    # abort in status.
    rollback_latency: list[float] = field(default_factory=list)


class QueryKinds:
    """Names what each query the controller sent is for (the counting proxy's
    ``classify``), and notes how many revisions each grouped query asked for."""

    GROUPED = "grouped preset query"
    EXPLAIN = "no-data explanation (the revision's requests in the window)"
    SINGLE = "one revision's preset query"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.revisions: list[int] = []  # per grouped query

    def __call__(self, promql: str) -> str:
        if "by (namespace, revision)" in promql:
            match = re.search(r'revision=~"([^"]*)"', promql)
            with self._lock:
                self.revisions.append(len(match.group(1).split("|")) if match else 0)
            return self.GROUPED
        if promql.startswith("sum(increase("):
            return self.EXPLAIN
        if 'revision="' in promql:
            return self.SINGLE
        return "other"


def _watch(
    stop: threading.Event,
    list_call: Callable[..., Any],
    on_event: Callable[[dict[str, Any]], None],
    api: k8s.ApiClient,
) -> None:
    """Feed every object ``list_call`` watches to ``on_event`` until ``stop``; a watch
    that ends is opened again (its opening lists every object again, as ADDED)."""
    sanitize: Any = api.sanitize_for_serialization
    while not stop.is_set():
        watcher: Any = Watch()
        try:
            for event in watcher.stream(list_call, timeout_seconds=30):
                if stop.is_set():
                    break
                obj = event["object"]
                on_event(obj if isinstance(obj, dict) else sanitize(obj))
        except Exception:  # an apiserver slow under load: open the watch again
            if stop.wait(0.5):
                return
        finally:
            watcher.stop()


class _QuietServer(ThreadingHTTPServer):
    """A scrape Prometheus gave up on (its 1 s timeout, on a loaded machine) closes the
    connection under the answer: counted, not printed as a traceback."""

    dropped = 0

    def handle_error(self, request: Any, client_address: Any) -> None:
        type(self).dropped += 1


@dataclass
class _Pod:
    namespace: str
    revision: str
    error_rate: float
    ready_since: float | None = None


class SyntheticExporter:
    """``http_requests_total`` per (namespace, revision) for pods that have no process.

    A pod's counters grow at ``REQUESTS_PER_SECOND`` while it is Ready (from a watch on
    the pods the controller made); what a pod served before it went away stays in its
    revision's counters, so they only ever grow, as a counter must.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._pods: dict[tuple[str, str], _Pod] = {}
        self._retired: dict[tuple[str, str], list[float]] = {}  # scope -> [ok, errors]
        self.first_ready: dict[tuple[str, str], float] = {}  # scope -> monotonic
        self._stop = threading.Event()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                body = exporter.exposition().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def watch(self, api: k8s.ApiClient) -> None:
        core: Any = k8s.CoreV1Api(api)

        def pods(**kwargs: Any) -> Any:
            return core.list_pod_for_all_namespaces(label_selector=REVISION_LABEL, **kwargs)

        threading.Thread(
            target=_watch, args=(self._stop, pods, self.observe, api), daemon=True
        ).start()

    def observe(self, pod: dict[str, Any]) -> None:
        """Note a pod as the watch reports it (Ready or not, gone when deleting)."""
        meta = pod["metadata"]
        key = (meta["namespace"], meta["name"])
        ready = not meta.get("deletionTimestamp") and any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (pod.get("status") or {}).get("conditions") or []
        )
        now = self._clock()
        with self._lock:
            state = self._pods.get(key)
            if state is None:
                env = {
                    e["name"]: e.get("value") for e in pod["spec"]["containers"][0].get("env") or []
                }
                state = _Pod(
                    meta["namespace"],
                    meta["labels"][REVISION_LABEL],
                    float(env.get("DEMO_ERROR_RATE") or 0),
                )
                self._pods[key] = state
            if ready and state.ready_since is None:
                state.ready_since = now
                self.first_ready.setdefault((state.namespace, state.revision), now)
            elif not ready and state.ready_since is not None:
                self._retire(state, now)

    def _retire(self, pod: _Pod, now: float) -> None:
        assert pod.ready_since is not None
        served = (now - pod.ready_since) * REQUESTS_PER_SECOND
        counts = self._retired.setdefault((pod.namespace, pod.revision), [0.0, 0.0])
        counts[0] += served * (1 - pod.error_rate)
        counts[1] += served * pod.error_rate
        pod.ready_since = None

    def exposition(self) -> str:
        now = self._clock()
        with self._lock:
            totals = {scope: list(counts) for scope, counts in self._retired.items()}
            for pod in self._pods.values():
                if pod.ready_since is None:
                    continue
                served = (now - pod.ready_since) * REQUESTS_PER_SECOND
                counts = totals.setdefault((pod.namespace, pod.revision), [0.0, 0.0])
                counts[0] += served * (1 - pod.error_rate)
                counts[1] += served * pod.error_rate
        lines = ["# TYPE http_requests_total counter"]
        for (namespace, revision), (ok, errors) in sorted(totals.items()):
            scope = f'namespace="{namespace}",revision="{revision}"'
            lines.append(f'http_requests_total{{{scope},code="200"}} {ok:.3f}')
            lines.append(f'http_requests_total{{{scope},code="500"}} {errors:.3f}')
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()


class _Verdicts:
    """When each Rollout's canary analysis was first seen, first judged, decided, and
    aborted, from a watch on the Rollouts (monotonic seconds)."""

    def __init__(self, stable: dict[str, str]) -> None:
        self.stable = stable
        self.started: dict[str, float] = {}
        self.first_verdict: dict[str, float] = {}
        self.verdict: dict[str, float] = {}
        self.aborted: dict[str, float] = {}
        self.canary: dict[str, str] = {}
        self._stop = threading.Event()

    def watch(self, api: k8s.ApiClient, ns: str) -> None:
        custom: Any = k8s.CustomObjectsApi(api)

        def rollouts(**kwargs: Any) -> Any:
            return custom.list_namespaced_custom_object(GROUP, VERSION, ns, "rollouts", **kwargs)

        threading.Thread(
            target=_watch, args=(self._stop, rollouts, self._on_rollout, api), daemon=True
        ).start()

    def _on_rollout(self, obj: dict[str, Any]) -> None:
        now = time.monotonic()
        name = obj["metadata"]["name"]
        status = obj.get("status") or {}
        stable = self.stable.get(name)
        if stable is None:
            return
        for run in status.get("analysisRuns") or []:
            if run.get("revision") == stable:
                continue
            self.canary.setdefault(name, str(run.get("revision")))
            self.started.setdefault(name, now)
            measured = [m for metric in run.get("metrics") or [] for m in metric["measurements"]]
            if any(m.get("phase") != "Inconclusive" for m in measured):
                self.first_verdict.setdefault(name, now)
            if run.get("phase") not in (None, "Running"):
                self.verdict.setdefault(name, now)
        if status.get("stableRevision") not in (None, stable) and name in self.started:
            # Promoted in the same write that ended the run: that write is the verdict.
            self.verdict.setdefault(name, now)
            self.first_verdict.setdefault(name, now)
        if status.get("aborted"):
            self.aborted.setdefault(name, now)
            self.verdict.setdefault(name, now)

    def close(self) -> None:
        self._stop.set()


def bench_analysis(
    workdir: Path, *, count: int, sandbox: Sandbox, controller_args: list[str]
) -> AnalysisResult:
    workdir.mkdir(parents=True)
    exporter = SyntheticExporter()
    try:
        with sandbox(workdir, exporter_targets=(exporter.address,)) as (plane, prometheus, api):
            exporter.watch(api)
            kinds = QueryKinds()
            proxy = CountingProxy(prometheus.url, classify=kinds)
            agent = NodeAgent(api, run_processes=False)
            agent.start()
            controller = Controller(
                plane.kubeconfig, proxy.url, workdir / "controller.log", controller_args
            )
            try:
                return _run(Cluster(api), api, controller, proxy, kinds, exporter, count)
            finally:
                controller.stop()
                agent.stop()
                proxy.close()
    finally:
        exporter.close()


def _run(
    cluster: Cluster,
    api: k8s.ApiClient,
    controller: Controller,
    proxy: CountingProxy,
    kinds: QueryKinds,
    exporter: SyntheticExporter,
    count: int,
) -> AnalysisResult:
    cluster.core.create_namespace({"metadata": {"name": "deployctl-system"}})
    ns = cluster.namespace(NAMESPACE)
    cluster.create(ns, "analysistemplates", error_rate_template(count=3))
    names = [f"a{i:05d}" for i in range(count)]
    # One in twenty is bad, spread over the names (at least one).
    bad = [name for i, name in enumerate(names) if i % 20 == 10] or names[:1]
    result = AnalysisResult(canaries=count, bad=bad)

    def create(name: str) -> None:
        body = rollout(name, "v1", replicas=1, steps=STEPS, scaleDownDelaySeconds=0)
        cluster.create(ns, "rollouts", body)

    began = time.monotonic()
    in_parallel(create, names)
    progress = Progress(f"analysis: {count} first deploys")

    def all_healthy() -> bool:
        statuses = cluster.statuses(ns)
        healthy = sum(1 for s in statuses.values() if s.get("phase") == "Healthy")
        progress.tick(f"{healthy}/{count} healthy")
        return healthy == count

    wait_until(all_healthy, timeout=7200, what=f"{count} first deploys", interval=2)
    result.first_deploy_seconds = time.monotonic() - began
    say(f"analysis: {count} first deploys healthy in {result.first_deploy_seconds:.0f} s")
    stable = {n: s["stableRevision"] for n, s in cluster.statuses(ns).items()}
    verdicts = _Verdicts(stable)
    verdicts.watch(api, ns)
    bad_set = set(bad)

    def give_v2(name: str) -> None:
        env = {"DEMO_ERROR_RATE": BAD_ERROR_RATE} if name in bad_set else None
        cluster.replace_template(ns, name, rollout(name, "v2", replicas=1, steps=STEPS, env=env))

    cpu0, queries0, kinds0 = controller.cpu_seconds(), proxy.queries, dict(proxy.kinds)
    grouped0 = len(kinds.revisions)
    measured0 = controller.counter("deployctl_analysis_measurements")
    began = time.monotonic()
    loads: list[float] = []
    progress = Progress(f"analysis: {count} canaries")
    in_parallel(give_v2, names)

    def decided() -> dict[str, dict[str, Any]] | None:
        statuses = cluster.statuses(ns)
        aborted = sum(1 for s in statuses.values() if s.get("aborted"))
        promoted = sum(
            1
            for n, s in statuses.items()
            if s.get("phase") == "Healthy" and s.get("stableRevision") != stable[n]
        )
        loads.append(load_average())
        elapsed = max(time.monotonic() - began, 1e-9)
        progress.tick(
            f"{promoted} promoted, {aborted} rolled back of {count}; "
            f"{(proxy.queries - queries0) / elapsed:.2f} queries/s, "
            f"controller CPU {controller.cpu_seconds() - cpu0:.0f} s"
        )
        return statuses if aborted + promoted == count else None

    statuses = wait_until(decided, timeout=7200, what=f"{count} canaries decided", interval=2)
    result.seconds = time.monotonic() - began
    result.queries = proxy.queries - queries0
    result.longest_request = proxy.longest
    result.scrapes_cut = _QuietServer.dropped
    result.revisions_per_query = kinds.revisions[grouped0:]
    result.queries_by_kind = {
        k: v - kinds0.get(k, 0) for k, v in proxy.kinds.items() if v != kinds0.get(k, 0)
    }
    result.measurements = controller.counter("deployctl_analysis_measurements") - measured0
    result.cpu = controller.cpu_seconds() - cpu0
    result.peak_rss_mib = controller.peak_rss_mib()
    result.load = sum(loads) / len(loads) if loads else load_average()
    result.rolled_back = sorted(n for n, s in statuses.items() if s.get("aborted"))
    result.promoted = count - len(result.rolled_back)
    verdicts.close()
    for name in names:
        if name in verdicts.started and name in verdicts.verdict:
            result.verdict_latency.append(verdicts.verdict[name] - verdicts.started[name])
        if name in verdicts.started and name in verdicts.first_verdict:
            result.first_verdict.append(verdicts.first_verdict[name] - verdicts.started[name])
        first_request = exporter.first_ready.get((ns, verdicts.canary.get(name, "")))
        if name in bad_set and name in verdicts.aborted and first_request is not None:
            result.rollback_latency.append(verdicts.aborted[name] - first_request)
    say(
        f"analysis: {count} canaries decided in {result.seconds:.0f} s: "
        f"{len(result.rolled_back)} rolled back ({len(bad)} bad), "
        f"{result.queries / result.seconds:.2f} queries/s, "
        f"{result.measurements:.0f} measurements, queries by kind {result.queries_by_kind}, "
        f"longest request line {result.longest_request} bytes, controller CPU {result.cpu:.1f} s, "
        f"peak RSS {result.peak_rss_mib:.0f} MiB"
    )
    return result
