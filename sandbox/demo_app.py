"""The demo application: a tiny HTTP service whose health is set by its environment.

It is what every sandbox pod runs (the node agent starts one per pod when asked to), what
the tests start on their own through ``tests.fixtures_workloads.demo_app``, and the app of
the e2e image. "v2 is broken" is one line of a pod template: ``DEMO_ERROR_RATE=0.3``.

    python -m sandbox.demo_app --host 127.0.1.5 --port 8080

Endpoints: ``/`` answers 200, or 500 for a share ``DEMO_ERROR_RATE`` (0..1) of requests
(only from ``DEMO_ERRORS_AFTER_SECONDS`` after start on: a version that breaks after a
while), after sleeping ``DEMO_LATENCY_SECONDS`` (with ``DEMO_LATENCY_SPREAD`` > 0, the
median of a log-normal distribution of that spread, sigma of the log, drawn per request
from a generator seeded with ``DEMO_LATENCY_SEED``: a latency distribution, so that a
comparison of two versions is a question of statistics, not of one constant);
``/healthz`` always 200; ``/version`` returns ``{"version": DEMO_VERSION}``; ``/metrics``
exports ``http_requests_total{code,method}`` and the ``http_request_duration_seconds`` histogram
from this process's own registry.

Errors are spread by a counter, not drawn at random, so a rate of 0.3 gives exactly 3
errors in any 10 consecutive requests and the tests can assert tight numbers.

The module also holds the two helpers every sandbox child process needs
(``die_with_parent`` and ``spawn_demo_app``); ``sandbox.prometheus`` and
``sandbox.node_agent`` use them.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Covers 5 ms .. 10 s, with 2 s present because the usual SlowResponses rule is p90 > 2 s
# and histogram_quantile is only exact at bucket boundaries.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.0,
    2.5,
    5.0,
    10.0,
)

DEFAULT_PORT = 8080
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class DemoConfig:
    """What one demo-app process does; built from flags and ``DEMO_*`` variables."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    error_rate: Fraction = Fraction(0)
    latency_seconds: float = 0.0
    latency_spread: float = 0.0
    latency_seed: int | None = None
    version: str = "dev"
    errors_after_seconds: float = 0.0

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        *,
        host: str | None = None,
        port: int | None = None,
    ) -> DemoConfig:
        """Read ``DEMO_*`` variables; explicit ``host``/``port`` win over the environment."""
        # Fraction("0.3") is exactly 3/10, which keeps the error spreading exact.
        error_rate = Fraction(env.get("DEMO_ERROR_RATE", "0") or "0").limit_denominator(10_000)
        if not 0 <= error_rate <= 1:
            raise ValueError(f"DEMO_ERROR_RATE must be within 0..1, got {error_rate}")
        latency = float(env.get("DEMO_LATENCY_SECONDS", "0") or "0")
        if latency < 0:
            raise ValueError(f"DEMO_LATENCY_SECONDS must be >= 0, got {latency}")
        spread = float(env.get("DEMO_LATENCY_SPREAD", "0") or "0")
        if not 0 <= spread <= 3:
            raise ValueError(f"DEMO_LATENCY_SPREAD must be within 0..3, got {spread}")
        seed = env.get("DEMO_LATENCY_SEED")
        errors_after = float(env.get("DEMO_ERRORS_AFTER_SECONDS", "0") or "0")
        if errors_after < 0:
            raise ValueError(f"DEMO_ERRORS_AFTER_SECONDS must be >= 0, got {errors_after}")
        return cls(
            errors_after_seconds=errors_after,
            host=host or env.get("DEMO_HOST", "127.0.0.1"),
            port=port if port is not None else int(env.get("DEMO_PORT", str(DEFAULT_PORT))),
            error_rate=error_rate,
            latency_seconds=latency,
            latency_spread=spread,
            latency_seed=int(seed) if seed else None,
            version=env.get("DEMO_VERSION", "dev"),
        )


class ErrorSpreader:
    """Decides which request fails: request n fails when floor(n*r) steps up.

    Over any k consecutive requests the number of failures is floor or ceil of k*r, so
    0.3 gives exactly 3 in every 10. Thread-safe: the server handles requests in threads.
    """

    def __init__(self, rate: Fraction) -> None:
        self._rate = rate
        self._count = 0
        self._lock = threading.Lock()

    def next_fails(self) -> bool:
        with self._lock:
            self._count += 1
            n = self._count
        return math.floor(n * self._rate) > math.floor((n - 1) * self._rate)


class DemoApp:
    """One demo-app server; ``serve_forever`` in the process, or ``start``/``stop`` in a thread."""

    def __init__(self, config: DemoConfig) -> None:
        self.config = config
        self._latency_random = random.Random(config.latency_seed)
        # A registry per app, not the global one: tests run several apps in one process.
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests",
            "HTTP requests answered by the demo app.",
            ["code", "method"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request of the demo app.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        # Export both codes from the start: a series born at its first error has no zero
        # sample before it, and rate() would then miss that first increase entirely.
        for code in ("200", "500"):
            self.requests.labels(code=code, method="GET")
        self._errors = ErrorSpreader(config.error_rate)
        self._started = time.monotonic()
        self._server = ThreadingHTTPServer((config.host, config.port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (differs from the config's when it asked for 0)."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        app = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
                app.handle(self)

            def log_message(self, format: str, *args: object) -> None:
                # One line per request at 50 req/s would drown every test log.
                pass

        return Handler

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        path = request.path.split("?", 1)[0]
        if path == "/metrics":
            self._reply(request, 200, generate_latest(self.registry), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            self._reply(request, 200, b"ok\n", "text/plain")
        elif path == "/version":
            body = json.dumps({"version": self.config.version}).encode()
            self._timed(request, lambda: (200, body, "application/json"))
        elif path == "/":
            self._timed(request, self._answer_root)
        else:
            self._reply(request, 404, b"not found\n", "text/plain")

    def latency(self) -> float:
        """Seconds the next answer waits: the configured latency, or a draw from its
        log-normal distribution (``normalvariate`` is safe across the server's threads)."""
        median, spread = self.config.latency_seconds, self.config.latency_spread
        if not median or not spread:
            return median
        return median * math.exp(self._latency_random.normalvariate(0.0, spread))

    def _answer_root(self) -> tuple[int, bytes, str]:
        delay = self.latency()
        if delay:
            time.sleep(delay)
        broken = time.monotonic() - self._started >= self.config.errors_after_seconds
        if broken and self._errors.next_fails():
            return 500, b"injected error\n", "text/plain"
        return 200, f"hello from {self.config.version}\n".encode(), "text/plain"

    def _timed(
        self,
        request: BaseHTTPRequestHandler,
        answer: Callable[[], tuple[int, bytes, str]],
    ) -> None:
        # Probes and scrapes are not counted, so the error ratio is the app's traffic only.
        start = time.perf_counter()
        code, body, content_type = answer()
        self.duration.observe(time.perf_counter() - start)
        self.requests.labels(code=str(code), method=request.command).inc()
        self._reply(request, code, body, content_type)

    def _reply(
        self, request: BaseHTTPRequestHandler, code: int, body: bytes, content_type: str
    ) -> None:
        request.send_response(code)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(body)))
        request.send_header("X-Demo-Version", self.config.version)
        request.end_headers()
        request.wfile.write(body)

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.2)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever, name=f"demo-app-{self.url}", daemon=True
        )
        self._thread.start()

    def request_shutdown(self) -> None:
        """Make ``serve_forever`` return; safe from a signal handler."""
        # shutdown() blocks until serve_forever returns, so never call it on that thread.
        threading.Thread(target=self._server.shutdown, daemon=True).start()

    def close(self) -> None:
        self._server.server_close()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def die_with_parent() -> None:
    """``preexec_fn`` for every child the sandbox starts: SIGKILL it when we die.

    Linux delivers the signal when the *thread* that forked exits, so callers spawn from
    a thread that lives as long as the child should (the main thread, or a worker that
    outlives its children).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def spawn_demo_app(
    host: str,
    port: int,
    *,
    env: Mapping[str, str] | None = None,
    log: IO[bytes] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``python -m sandbox.demo_app`` as a child that dies with this process."""
    child_env = dict(os.environ)
    # The package may not be installed in the interpreter's path (e.g. a bare checkout).
    repo_root = str(Path(__file__).resolve().parent.parent)
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (repo_root, child_env.get("PYTHONPATH", "")) if p
    )
    child_env.update(env or {})
    return subprocess.Popen(
        [sys.executable, "-m", "sandbox.demo_app", "--host", host, "--port", str(port)],
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=log if log is not None else subprocess.DEVNULL,
        stderr=subprocess.STDOUT if log is not None else subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )


def wait_healthy(
    url: str, *, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll ``<url>/healthz`` until it answers 200; fail early if ``process`` exits."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"demo app at {url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"demo app at {url} not healthy after {timeout}s")
        time.sleep(0.05)


def port_is_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be bound now (used to skip addresses still taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.demo_app", description=__doc__)
    parser.add_argument("--host", help="address to listen on (default: $DEMO_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: $DEMO_PORT or 8080)")
    args = parser.parse_args(argv)
    app = DemoApp(DemoConfig.from_env(os.environ, host=args.host, port=args.port))

    def terminate(signum: int, frame: object) -> None:
        app.request_shutdown()

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)
    app.serve_forever()
    app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
