"""A counting reverse proxy in front of the real Prometheus: every request is forwarded
unchanged, and instant queries (``/api/v1/query``) are counted, so a test or the
benchmark can say how many queries the controller sent without mocking its provider.

Each instant query is also noted (``seen``: method, bytes of request line and body, its
PromQL). With ``max_request_line``, a request whose request line is longer is answered
414 and not forwarded, as a reverse proxy with that buffer (nginx: 8 KiB) does."""

from __future__ import annotations

import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class SeenQuery:
    """One instant query as it reached the proxy."""

    method: str
    size: int  # bytes of the request line and the body
    promql: str


class CountingProxy:
    """Forwards every request to Prometheus unchanged and counts instant queries; with
    ``classify``, also counts them by the kind it names for each query's PromQL."""

    def __init__(
        self,
        upstream: str,
        *,
        classify: Callable[[str], str] | None = None,
        max_request_line: int | None = None,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.queries = 0
        self.seen: list[SeenQuery] = []
        self.refused = 0  # requests answered 414 (request line over max_request_line)
        self.kinds: Counter[str] = Counter()
        self.longest = 0  # bytes of the longest request line seen (what URL limits apply to)
        self._classify = classify
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _forward(self, body: bytes | None) -> None:
                if max_request_line is not None and len(self.requestline) > max_request_line:
                    with proxy._lock:
                        proxy.refused += 1
                    self.send_error(414)
                    return
                if self.path.startswith("/api/v1/query?") or self.path == "/api/v1/query":
                    kind = proxy._kind(self.path, body)
                    size = len(self.requestline) + len(body or b"")
                    with proxy._lock:
                        proxy.queries += 1
                        proxy.longest = max(proxy.longest, len(self.requestline))
                        proxy.seen.append(
                            SeenQuery(self.command, size, proxy._promql(self.path, body))
                        )
                        if kind is not None:
                            proxy.kinds[kind] += 1
                request = urllib.request.Request(
                    proxy.upstream + self.path, data=body, method=self.command
                )
                if ctype := self.headers.get("Content-Type"):
                    request.add_header("Content-Type", ctype)
                try:
                    with urllib.request.urlopen(request, timeout=30) as reply:
                        status, payload = reply.status, reply.read()
                except urllib.error.HTTPError as exc:
                    status, payload = exc.code, exc.read()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                self._forward(None)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                self._forward(self.rfile.read(length))

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _kind(self, path: str, body: bytes | None) -> str | None:
        if self._classify is None:
            return None
        return self._classify(self._promql(path, body))

    @staticmethod
    def _promql(path: str, body: bytes | None) -> str:
        form = urllib.parse.urlsplit(path).query + "&" + (body or b"").decode(errors="replace")
        return urllib.parse.parse_qs(form).get("query", [""])[0]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
