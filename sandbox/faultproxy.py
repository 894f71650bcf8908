"""A fault-injecting HTTP reverse proxy in front of the sandbox's kube-apiserver.

Tests (through the ``fault_proxy`` fixture of ``tests.fixtures_cluster``) and the demo point
a client's kubeconfig at ``FaultProxy.url`` instead of the apiserver, then switch faults on
and off at runtime: a share of 500s, 429s with Retry-After, added latency, watch streams
cut every N seconds, and a 410 Expired on the next watch. Everything else is forwarded
unchanged to the real apiserver, watch streams chunk by chunk without buffering, and every
request is counted so tests can assert how many API calls the controller made.

The proxy listens on plain HTTP on 127.0.0.1 (the bearer token passes through untouched)
and speaks TLS to the apiserver, verified against the sandbox CA. Only the stdlib is used.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kubernetes import client as k8s

from sandbox.controlplane import make_api_client, write_kubeconfig

# Headers that describe one hop, not the message: never forwarded (RFC 9110 section 7.6.1).
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
_READ_SIZE = 64 * 1024


@dataclass(frozen=True)
class Faults:
    """The faults currently injected; replaced as a whole so readers see a consistent set."""

    error_rate_500: float = 0.0
    rate_429: float = 0.0
    retry_after_seconds: int = 1
    latency_seconds: float = 0.0
    cut_watches_every: float | None = None
    # False: end the chunked stream cleanly, as the apiserver does when a watch times out.
    # True: drop the TCP connection mid-stream, as a dying load balancer would.
    cut_watches_abruptly: bool = False


@dataclass(frozen=True)
class RequestRecord:
    """One request seen by the proxy."""

    method: str
    verb: str  # Kubernetes verb: get, list, watch, create, update, patch, delete, ...
    path: str
    status: int
    injected: str | None  # "500", "429", "410" when the proxy answered itself


@dataclass(frozen=True)
class ProxyStats:
    records: tuple[RequestRecord, ...]
    watches_cut: int

    def count(
        self,
        *,
        verb: str | None = None,
        path: str | None = None,
        status: int | None = None,
        injected: bool | None = None,
    ) -> int:
        """Requests matching every given filter (``path`` matches as a substring)."""
        return sum(
            1
            for r in self.records
            if (verb is None or r.verb == verb)
            and (path is None or path in r.path)
            and (status is None or r.status == status)
            and (injected is None or (r.injected is not None) == injected)
        )

    def by_verb_path_status(self) -> Counter[tuple[str, str, int]]:
        return Counter((r.verb, r.path, r.status) for r in self.records)

    @property
    def total(self) -> int:
        return len(self.records)


@dataclass(frozen=True)
class _Route:
    """What a request means in Kubernetes terms."""

    verb: str
    path: str
    is_watch: bool = field(default=False)


def classify(method: str, target: str) -> _Route:
    """Map an HTTP request onto a Kubernetes verb (get/list/watch/create/...)."""
    parts = urlsplit(target)
    query = parse_qs(parts.query)
    segments = [s for s in parts.path.split("/") if s]
    if segments[:2] == ["api", "v1"]:
        rest = segments[2:]
    elif len(segments) >= 3 and segments[0] == "apis":
        rest = segments[3:]
    else:
        rest = []  # discovery, /version, /readyz ...
    if rest[:1] == ["namespaces"] and len(rest) >= 3:
        rest = rest[2:]
    is_collection = len(rest) == 1
    is_watch = query.get("watch", ["false"])[0].lower() in ("true", "1") or (rest[:1] == ["watch"])
    method = method.upper()
    if method == "GET":
        verb = "watch" if is_watch else ("list" if is_collection else "get")
    elif method == "DELETE":
        verb = "deletecollection" if is_collection else "delete"
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())
    return _Route(verb=verb, path=parts.path, is_watch=is_watch)


def status_body(*, code: int, reason: str, message: str, **extra: Any) -> bytes:
    """A ``Status`` object exactly as the apiserver serialises one."""
    status: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    status.update(extra)
    status["code"] = code
    return json.dumps(status, separators=(",", ":")).encode()


class FaultProxy:
    """Reverse proxy to ``upstream`` (the apiserver) with switchable faults."""

    def __init__(
        self,
        upstream: str,
        *,
        ca_file: Path | None,
        token: str | None = None,
        port: int = 0,
        seed: int | None = None,
    ) -> None:
        target = urlsplit(upstream)
        if target.scheme not in ("http", "https") or target.hostname is None:
            raise ValueError(f"upstream must be an http(s) URL, got {upstream!r}")
        self.upstream = upstream
        self._upstream_host = target.hostname
        self._upstream_port = target.port or (443 if target.scheme == "https" else 80)
        self._ssl_context: ssl.SSLContext | None = None
        if target.scheme == "https":
            self._ssl_context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self.ca_file = ca_file
        self.token = token
        self._requested_port = port
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._faults = Faults()
        self._gone_pending = 0
        self._records: list[RequestRecord] = []
        self._watches_cut = 0
        self._open_sockets: set[socket.socket] = set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ faults

    @property
    def faults(self) -> Faults:
        with self._lock:
            return self._faults

    def set_faults(self, faults: Faults) -> None:
        with self._lock:
            self._faults = faults

    def _update(self, **changes: Any) -> None:
        with self._lock:
            self._faults = replace(self._faults, **changes)

    @property
    def error_rate_500(self) -> float:
        return self.faults.error_rate_500

    @error_rate_500.setter
    def error_rate_500(self, value: float) -> None:
        self._update(error_rate_500=value)

    @property
    def rate_429(self) -> float:
        return self.faults.rate_429

    @rate_429.setter
    def rate_429(self, value: float) -> None:
        self._update(rate_429=value)

    @property
    def latency_seconds(self) -> float:
        return self.faults.latency_seconds

    @latency_seconds.setter
    def latency_seconds(self, value: float) -> None:
        self._update(latency_seconds=value)

    @property
    def cut_watches_every(self) -> float | None:
        return self.faults.cut_watches_every

    @cut_watches_every.setter
    def cut_watches_every(self, value: float | None) -> None:
        self._update(cut_watches_every=value)

    def gone_next_watch(self, count: int = 1) -> None:
        """Answer the next ``count`` watch requests with a 410 Expired ERROR event.

        The official Python client's ``Watch.stream`` re-watches once on its own after a
        410 unless ``timeout_seconds`` is given: use ``count=2`` to make it raise anyway.
        """
        with self._lock:
            self._gone_pending += count

    @contextlib.contextmanager
    def injecting(self, **changes: Any) -> Iterator[FaultProxy]:
        """Apply fault settings for the duration of a ``with`` block."""
        with self._lock:
            before = self._faults
            self._faults = replace(before, **changes)
        try:
            yield self
        finally:
            self.set_faults(before)

    def reset(self) -> None:
        """No faults, no pending 410, empty counters."""
        with self._lock:
            self._faults = Faults()
            self._gone_pending = 0
            self._records.clear()
            self._watches_cut = 0

    # ------------------------------------------------------------------ stats

    def stats(self) -> ProxyStats:
        with self._lock:
            return ProxyStats(records=tuple(self._records), watches_cut=self._watches_cut)

    def reset_stats(self) -> None:
        with self._lock:
            self._records.clear()
            self._watches_cut = 0

    def _record(self, route: _Route, *, method: str, status: int, injected: str | None) -> None:
        with self._lock:
            self._records.append(
                RequestRecord(
                    method=method,
                    verb=route.verb,
                    path=route.path,
                    status=status,
                    injected=injected,
                )
            )

    def _decide(self, route: _Route) -> tuple[Faults, str | None]:
        """Pick this request's fault (if any) under the lock: one draw per request."""
        with self._lock:
            faults = self._faults
            if route.is_watch and self._gone_pending > 0:
                self._gone_pending -= 1
                return faults, "410"
            draw = self._random.random()
            if draw < faults.error_rate_500:
                return faults, "500"
            if draw < faults.error_rate_500 + faults.rate_429:
                return faults, "429"
            return faults, None

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("fault proxy not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FaultProxy:
        if self._server is not None:
            return self
        proxy = self

        class Handler(_ProxyHandler):
            owner = proxy

        server = _QuietServer(("127.0.0.1", self._requested_port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.1,), name="fault-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        # Long-running watch streams would otherwise keep their handler threads alive.
        with self._lock:
            sockets = list(self._open_sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def kubeconfig(self, path: Path, *, token: str | None = None) -> Path:
        """Write a kubeconfig (context ``sandbox``) that goes through the proxy."""
        return write_kubeconfig(path, server=self.url, token=self._token(token), ca_file=None)

    def api_client(self, *, token: str | None = None) -> k8s.ApiClient:
        return make_api_client(server=self.url, token=self._token(token), ca_file=None)

    def _token(self, token: str | None) -> str:
        chosen = token or self.token
        if chosen is None:
            raise ValueError("no token: pass token= here or to FaultProxy(...)")
        return chosen

    # ------------------------------------------------------------------ plumbing

    def _connect(self) -> http.client.HTTPConnection:
        if self._ssl_context is not None:
            return http.client.HTTPSConnection(
                self._upstream_host, self._upstream_port, context=self._ssl_context, timeout=30
            )
        return http.client.HTTPConnection(self._upstream_host, self._upstream_port, timeout=30)

    def _track(self, sock: socket.socket | None, *, add: bool) -> None:
        if sock is None:
            return
        with self._lock:
            if add:
                self._open_sockets.add(sock)
            else:
                self._open_sockets.discard(sock)

    def _count_cut(self) -> None:
        with self._lock:
            self._watches_cut += 1


class _ProxyHandler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"  # keep-alive and chunked responses to the client
    # Headers and body leave in separate writes; with Nagle on, the client's delayed ACK
    # would add about 40 ms to every response.
    disable_nagle_algorithm = True
    _upstream: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request stderr lines; ``stats()`` is the record."""

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def finish(self) -> None:
        if self._upstream is not None:
            self._upstream.close()
        super().finish()

    def _handle(self) -> None:
        route = classify(self.command, self.path)
        faults, injected = self.owner._decide(route)
        if faults.latency_seconds > 0:
            time.sleep(faults.latency_seconds)  # the fault itself, not synchronisation
        if injected == "410":
            self._send_gone(route)
        elif injected == "500":
            self._send_status(
                route,
                code=500,
                body=status_body(
                    code=500,
                    reason="InternalError",
                    message="Internal error occurred: injected by the deployctl fault proxy",
                    details={"causes": [{"message": "injected by the deployctl fault proxy"}]},
                ),
                injected=injected,
            )
        elif injected == "429":
            seconds = faults.retry_after_seconds
            self._send_status(
                route,
                code=429,
                body=status_body(
                    code=429,
                    reason="TooManyRequests",
                    message="Too many requests, please try again later.",
                    details={"retryAfterSeconds": seconds},
                ),
                injected=injected,
                headers={"Retry-After": str(seconds)},
            )
        else:
            self._forward(route, faults)

    def _read_body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if length is not None:
            return self.rfile.read(int(length))
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return None

    def _send_status(
        self,
        route: _Route,
        *,
        code: int,
        body: bytes,
        injected: str | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._read_body()  # consume it so the keep-alive connection stays in sync
        # Counted before answering, so a test that got the answer also sees the count.
        self.owner._record(route, method=self.command, status=code, injected=injected)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_gone(self, route: _Route) -> None:
        """What kube-apiserver sends for a watch from a compacted resourceVersion."""
        event = {
            "type": "ERROR",
            "object": json.loads(
                status_body(
                    code=410,
                    reason="Expired",
                    message="too old resource version: 1 (2) (injected by the fault proxy)",
                )
            ),
        }
        self._read_body()
        self.owner._record(route, method=self.command, status=200, injected="410")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._write_chunk(json.dumps(event, separators=(",", ":")).encode() + b"\n")
        self._write_chunk(b"")

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _forward(self, route: _Route, faults: Faults) -> None:
        body = self._read_body()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        if body is not None:
            headers["Content-Length"] = str(len(body))
        response = self._upstream_request(body, headers)
        if response is None:
            return
        streaming = response.getheader("Content-Length") is None
        self.send_response(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        if streaming:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", response.getheader("Content-Length") or "0")
        self.owner._record(route, method=self.command, status=response.status, injected=None)
        self.end_headers()
        if self.command == "HEAD":
            response.read()
            return
        if not streaming:
            remaining = int(response.getheader("Content-Length") or 0)
            while remaining > 0:
                data = response.read(min(remaining, _READ_SIZE))
                if not data:
                    break
                self.wfile.write(data)
                remaining -= len(data)
            self.wfile.flush()
            return
        self._stream(response, route=route, faults=faults)

    def _upstream_request(
        self, body: bytes | None, headers: dict[str, str]
    ) -> http.client.HTTPResponse | None:
        # A kept-alive upstream connection can have been closed by the apiserver; one retry
        # on a fresh connection covers that without hiding a real outage.
        for attempt in (1, 2):
            if self._upstream is None:
                self._upstream = self.owner._connect()
            try:
                self._upstream.request(self.command, self.path, body=body, headers=headers)
                return self._upstream.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                self._upstream.close()
                self._upstream = None
                if attempt == 2:
                    route = classify(self.command, self.path)
                    self.close_connection = True
                    self._send_status(
                        route,
                        code=502,
                        body=status_body(code=502, reason="BadGateway", message=str(exc)),
                        injected=None,
                    )
        return None

    def _stream(self, response: http.client.HTTPResponse, *, route: _Route, faults: Faults) -> None:
        """Relay a chunked body as it arrives; cut watches when told to."""
        upstream = self._upstream
        assert upstream is not None
        sock = upstream.sock
        cut = threading.Event()
        timer: threading.Timer | None = None
        if route.is_watch and faults.cut_watches_every:

            def cut_now() -> None:
                cut.set()
                with contextlib.suppress(OSError, AttributeError):
                    sock.shutdown(socket.SHUT_RDWR)

            timer = threading.Timer(faults.cut_watches_every, cut_now)
            timer.daemon = True
            timer.start()
        self.owner._track(sock, add=True)
        self.owner._track(self.connection, add=True)
        # Watch events are whole JSON lines: only whole lines are relayed, so a cut never
        # leaves half an event in the client's stream.
        pending = b""
        try:
            while True:
                try:
                    data = response.read1(_READ_SIZE)
                except (OSError, http.client.HTTPException):
                    data = b""
                if not data:
                    break
                if route.is_watch:
                    pending += data
                    complete, newline, pending = pending.rpartition(b"\n")
                    data = complete + newline
                    if not data:
                        continue
                self._write_chunk(data)
        except OSError:
            # The client went away; close the upstream stream too.
            self.close_connection = True
        finally:
            if timer is not None:
                timer.cancel()
            self.owner._track(sock, add=False)
            self.owner._track(self.connection, add=False)
        if cut.is_set() or not response.isclosed():
            upstream.close()
            self._upstream = None
        if cut.is_set():
            self.owner._count_cut()
            if faults.cut_watches_abruptly:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
        if not self.close_connection:
            with contextlib.suppress(OSError):
                self._write_chunk(b"")


class _QuietServer(ThreadingHTTPServer):
    """A client hanging up mid-request (a killed controller) is normal here, not a
    traceback on stderr; anything else is still reported."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)
