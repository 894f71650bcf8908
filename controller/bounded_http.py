"""HTTP with one deadline per call and a capped, decompressed-in-steps body.

Used by the Prometheus provider (``controller.analysis.prometheus`` hands a
``BoundedSession`` to prometheus-api-client) and the webhook notifier
(``controller.notify``): a metric's ``address`` or a webhook URL may point anywhere, so
the server at the other end may be hostile. Plain ``requests`` bounds each socket
operation, not a call: a server that sends one byte every few seconds holds a worker
for as long as it likes, and a 200 KiB gzip body inflates to hundreds of MiB before the
caller sees a byte. Here:

- **deadline**: every request sent through the session ends by ``deadline`` (a
  ``time.monotonic()`` instant). Each socket the call opens is watched by one shared
  watchdog thread, which shuts the connection down at the deadline, so a trickle in
  the status line, the headers, a TLS handshake or the body ends on time. Socket
  timeouts are also capped at the time left.
- **body**: the body is streamed; ``identity``, ``gzip`` and ``deflate`` are inflated
  here with ``zlib`` in steps whose output never exceeds the cap (``max_body`` bytes
  after decompression). Other encodings are refused (we only offer gzip and deflate).

Errors (both subclasses of ``requests.RequestException``, so callers that map requests'
errors keep working)::

    DeadlineExceeded      the call did not finish by its deadline
    BodyRefused           the body is larger than the cap, or in an encoding we do not read
"""

from __future__ import annotations

import contextvars
import socket
import threading
import time
import zlib
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from controller.limits import Limit

_CHUNK = 16 * 1024
# How early a socket timeout may fire (timer rounding) and still count as the deadline.
_DEADLINE_SLACK = 0.05
ACCEPT_ENCODING = "gzip, deflate"


class DeadlineExceeded(requests.exceptions.Timeout):
    """The call did not finish by its deadline."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no complete answer within {seconds:.1f}s")
        self.seconds = seconds


class BodyRefused(requests.exceptions.RequestException):
    """The body is larger than allowed (after decompression) or in an unknown encoding."""


class _Call:
    """The sockets one call opened, shut down together when its deadline passes."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.expired = False
        self._lock = threading.Lock()
        # Duplicates of the connections' descriptors: shutdown() acts on the connection,
        # so it works on a dup whatever became of the original (TLS wraps it).
        self._sockets: list[socket.socket] = []

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock.dup())
            if self.expired:
                self._shutdown(self._sockets[-1])

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                self._shutdown(sock)

    def close(self) -> None:
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed by the other side


class _Watchdog:
    """One daemon thread that expires calls at their deadlines."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._calls: set[_Call] = set()
        self._thread: threading.Thread | None = None

    def add(self, call: _Call) -> None:
        with self._cond:
            self._calls.add(call)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="http-deadlines", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def remove(self, call: _Call) -> None:
        with self._cond:
            self._calls.discard(call)

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                for call in [c for c in self._calls if c.deadline <= now]:
                    self._calls.discard(call)
                    call.expire()
                wake = min((c.deadline for c in self._calls), default=None)
                # Bounded, so a far (or infinite) deadline never overflows the wait.
                self._cond.wait(60.0 if wake is None else min(60.0, max(0.0, wake - now)))


_WATCHDOG = _Watchdog()
_CURRENT: contextvars.ContextVar[_Call | None] = contextvars.ContextVar(
    "bounded_http_call", default=None
)


def _watch_new(sock: socket.socket) -> socket.socket:
    call = _CURRENT.get()
    if call is not None:
        call.watch(sock)
    return sock


class _WatchedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _watch_new(super()._new_conn())


class _WatchedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _watch_new(super()._new_conn())


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _WatchedAdapter(HTTPAdapter):
    """No urllib3 retries (the caller retries inside its own budget); watched sockets."""

    def __init__(self) -> None:
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _WatchedHTTPPool,
            "https": _WatchedHTTPSPool,
        }


class BoundedSession(requests.Session):
    """A ``requests.Session`` whose every call ends by ``deadline`` (monotonic) with a
    body of at most ``body_limit`` bytes after decompression (the limit is named in the
    error)."""

    def __init__(self, *, deadline: float, body_limit: Limit) -> None:
        super().__init__()
        self.deadline = deadline
        self.body_limit = body_limit
        self.max_body = body_limit.int
        self.headers["Accept-Encoding"] = ACCEPT_ENCODING
        self._adapter = _WatchedAdapter()
        self.mount("http://", self._adapter)
        self.mount("https://", self._adapter)

    def get_adapter(self, url: str) -> Any:
        # Clients mount their own adapters (with their own retries) on the URL they
        # talk to; every request here goes through the watched one instead.
        if url.lower().startswith(("http://", "https://")):
            return self._adapter
        return super().get_adapter(url)

    def send(self, request: Any, **kwargs: Any) -> requests.Response:
        started = time.monotonic()
        remaining = self.deadline - started
        if remaining <= 0:
            raise DeadlineExceeded(0.0)
        timeout = kwargs.get("timeout")
        if isinstance(timeout, int | float):
            kwargs["timeout"] = max(0.001, min(float(timeout), remaining))
        else:
            kwargs["timeout"] = remaining
        kwargs["stream"] = True
        call = _Call(self.deadline)
        token = _CURRENT.set(call)
        _WATCHDOG.add(call)
        try:
            try:
                response = super().send(request, **kwargs)
                try:
                    body = self._read_body(response, call)
                finally:
                    response.close()
            except (requests.RequestException, OSError) as exc:
                # A socket timeout capped at the time left can fire a moment before the
                # watchdog marks the call expired: both mean the deadline ended it.
                ran_out = call.expired or (
                    isinstance(exc, requests.exceptions.Timeout)
                    and time.monotonic() >= self.deadline - _DEADLINE_SLACK
                )
                if ran_out and not isinstance(exc, BodyRefused):
                    raise DeadlineExceeded(remaining) from None
                raise
            if call.expired:
                raise DeadlineExceeded(remaining)
        finally:
            _WATCHDOG.remove(call)
            _CURRENT.reset(token)
            call.close()
        # What requests itself sets once it has read a body (``content``, ``json()``).
        response._content = body
        setattr(response, "_content_consumed", True)  # noqa: B010 - not in the stubs
        return response

    def _read_body(self, response: requests.Response, call: _Call) -> bytes:
        encoding = (response.headers.get("Content-Encoding") or "identity").strip().lower()
        inflater: Any = None
        if encoding in ("gzip", "x-gzip"):
            inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif encoding == "deflate":
            inflater = zlib.decompressobj()
        elif encoding not in ("identity", ""):
            raise BodyRefused(f"the answer is in encoding {encoding[:40]!r}; only gzip or deflate")
        length = response.headers.get("Content-Length", "")
        if inflater is None and length.isdigit() and int(length) > self.max_body:
            raise self._too_large()
        out = bytearray()
        while not call.expired:
            chunk = response.raw.read(_CHUNK, decode_content=False)
            if not chunk:
                break
            if inflater is None:
                out += chunk
            else:
                pending = chunk
                while pending:
                    # Never ask zlib for more than one byte past the cap: a small
                    # compressed chunk may stand for gigabytes.
                    room = self.max_body - len(out)
                    try:
                        out += inflater.decompress(pending, room + 1)
                    except zlib.error as exc:
                        raise BodyRefused(f"the {encoding} body does not inflate: {exc}") from None
                    pending = inflater.unconsumed_tail
                    if len(out) > self.max_body:
                        break
            if len(out) > self.max_body:
                raise self._too_large()
        if inflater is not None and not call.expired:
            out += inflater.flush()
            if len(out) > self.max_body:
                raise self._too_large()
        return bytes(out)

    def _too_large(self) -> BodyRefused:
        return BodyRefused(
            f"the answer is larger than allowed after decompression ({self.body_limit})"
        )
