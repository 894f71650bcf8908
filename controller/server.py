"""The operator's HTTP endpoints: ``/metrics``, ``/healthz``, ``/readyz``.

``deployctl controller`` starts one ``HealthServer`` thread and registers checks:

- ``/healthz`` (liveness): the process answers and every registered liveness check
  passes (worker threads, informer threads and the elector thread alive). A failure
  here makes the kubelet restart the pod, so only "this process is wedged" belongs here,
  never "the apiserver is unreachable".
- ``/readyz`` (readiness): the informers have synced and, with leader election on, the
  elector is either leading or a *healthy standby* (its thread runs and it reached the
  apiserver within a lease duration). We report a standby Ready on purpose: the operator
  serves no traffic, and a Deployment rolling update (maxUnavailable) would never finish
  if only the leader could ever be Ready. Who leads is visible in ``deployctl_leader``.
- ``/metrics``: ``controller.metrics.REGISTRY`` in the Prometheus text format.

Checks answer like kube-apiserver's: ``ok`` (200) or ``[-]name failed`` lines (503);
``?verbose`` lists every check.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from controller.metrics import REGISTRY

log = structlog.stdlib.get_logger(__name__)

Check = Callable[[], bool]


class HealthServer:
    """A small threaded HTTP server for probes and metrics."""

    def __init__(
        self,
        host: str = "0.0.0.0",
        port: int = 8080,
        *,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.host = host
        self.port = port
        self.registry = registry
        self._lock = threading.Lock()
        self._liveness: dict[str, Check] = {}
        self._readiness: dict[str, Check] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def add_liveness_check(self, name: str, check: Check) -> None:
        with self._lock:
            self._liveness[name] = check

    def add_readiness_check(self, name: str, check: Check) -> None:
        with self._lock:
            self._readiness[name] = check

    def run_checks(self, kind: str) -> list[tuple[str, bool]]:
        """(name, passed) for ``kind`` 'healthz' or 'readyz'; a raising check fails."""
        with self._lock:
            checks = dict(self._liveness if kind == "healthz" else self._readiness)
        results = []
        for name, check in sorted(checks.items()):
            try:
                passed = bool(check())
            except Exception:
                log.exception("health check raised", check=name)
                passed = False
            results.append((name, passed))
        return results

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("server not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> HealthServer:
        if self._server is not None:
            return self
        owner = self

        class Handler(_Handler):
            server_owner = owner

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health-server", daemon=True
        )
        self._thread.start()
        log.info("serving /metrics, /healthz, /readyz", url=self.url)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> HealthServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    server_owner: HealthServer

    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds would flood the log; access lines are dropped."""

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path == "/metrics":
            self._send(200, generate_latest(self.server_owner.registry), CONTENT_TYPE_LATEST)
        elif parts.path in ("/healthz", "/readyz", "/livez"):
            kind = "readyz" if parts.path == "/readyz" else "healthz"
            results = self.server_owner.run_checks(kind)
            ok = all(passed for _, passed in results)
            verbose = "verbose" in parse_qs(parts.query, keep_blank_values=True)
            lines = [
                f"[{'+' if passed else '-'}]{name} {'ok' if passed else 'failed'}"
                for name, passed in results
                if verbose or not passed
            ]
            lines.append(f"{kind} {'check passed' if ok else 'check failed'}" if lines else "ok")
            self._send(200 if ok else 503, ("\n".join(lines) + "\n").encode(), "text/plain")
        else:
            self._send(404, b"not found\n", "text/plain")

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
