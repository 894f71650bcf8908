"""Small local servers for the security tests: an echo server that can fail on purpose,
and tarpits (accept and never answer; drip one byte at a time).

Each binds port 0 of a loopback address of the caller's choice (the sandbox's API server
is on 127.0.0.1 and its pods on 127.<block>.x.y, so tests use 127.0.0.2 and up), and
stops with its ``with`` block.
"""

from __future__ import annotations

import functools
import gzip
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Seen:
    """What the echo server received: one dict of headers per request."""

    requests: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    seen: Seen

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@functools.cache
def gzip_bomb() -> bytes:
    """20 MB of zeros gzipped (about 20 KB), made once: compressing per request is slow."""
    return gzip.compress(b"\0" * (20 * 1024 * 1024), compresslevel=6)


class _Echo(BaseHTTPRequestHandler):
    """``/status/<code>``: that code with the request's headers echoed as JSON;
    ``/gzip-bomb``: 20 MB of zeros gzipped; ``/big``: 5 MB of text; else 200 + headers."""

    server: Any

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        return

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        headers = {k: v for k, v in self.headers.items()}
        self.server.seen.requests.append(headers)
        body: bytes
        extra: dict[str, str] = {}
        code = 200
        path = self.path.split("?", 1)[0]
        if path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            body = json.dumps({"error": "denied", "you_sent": headers}).encode()
        elif path == "/gzip-bomb":
            body = gzip_bomb()
            extra["Content-Encoding"] = "gzip"
        elif path == "/big":
            body = b"x" * (5 * 1024 * 1024)
        else:
            body = json.dumps({"status": "ok", "headers": headers}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client read only what it wanted (a capped body)


@contextmanager
def echo_server(host: str = "127.0.0.2") -> Iterator[Server]:
    gzip_bomb()  # before serving, so no request waits for it
    httpd = ThreadingHTTPServer((host, 0), _Echo)
    httpd.daemon_threads = True
    httpd.seen = Seen()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(host, httpd.server_address[1], httpd.seen)  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextmanager
def tarpit(host: str = "127.0.0.3", *, drip: float | None = None) -> Iterator[Server]:
    """Accepts every connection; never answers, or (``drip`` seconds) sends a status line
    one byte at a time, forever: a per-read timeout alone never fires."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, 0))
    listener.listen(64)
    stop = threading.Event()
    held: list[socket.socket] = []

    def drip_to(conn: socket.socket) -> None:
        line = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1_000_000
        for byte in line:
            if stop.wait(drip or 0):
                return
            try:
                conn.send(bytes([byte]))
            except OSError:
                return

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)
            if drip is not None:
                threading.Thread(target=drip_to, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield Server(host, listener.getsockname()[1], Seen())
    finally:
        stop.set()
        thread.join(5)
        listener.close()
        for conn in held:
            conn.close()
