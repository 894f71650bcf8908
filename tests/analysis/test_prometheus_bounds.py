"""A metric's Prometheus ``address`` may point at a hostile server: every call ends by its
deadline and reads a capped body.

The servers here are the hostile inputs (a gzip bomb, a tarpit that accepts and never
answers, one that trickles its headers, a 200 KB ``error``), each on 127.0.0.1; the
provider is the real one (``controller.analysis.prometheus``). Nothing waits on time:
the servers record how far they got, and the tests assert on what the provider returned
and on whether the server was cut off before it finished.
"""

from __future__ import annotations

import gzip
import io
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from controller.analysis.prometheus import PrometheusMeasurer
from controller.analysis.values import QueryFailure
from controller.bounded_http import BodyRefused, BoundedSession
from controller.limits import PROMETHEUS_BODY, Limit


def gzip_bomb(megabytes: int) -> bytes:
    """``megabytes`` MiB of spaces, gzipped: about 1/1000 of that on the wire."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9) as out:
        block = b" " * (1 << 20)
        for _ in range(megabytes):
            out.write(block)
    return buffer.getvalue()


BOMB = gzip_bomb(200)
BIG_ERROR = "x" * 200_000


class Hostile:
    """One HTTP server with a path per misbehaviour; records what each got to do."""

    def __init__(self) -> None:
        self.trickled = 0
        self.trickle_cut = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path.startswith("/bomb"):
                    self._send(200, BOMB, {"Content-Encoding": "gzip"})
                elif self.path.startswith("/error"):
                    body = json.dumps(
                        {"status": "error", "errorType": "bad_data", "error": BIG_ERROR}
                    )
                    self._send(400, body.encode(), {"Content-Type": "application/json"})
                elif self.path.startswith("/brotli"):
                    self._send(200, b"\x0b\x02\x80{}\x03", {"Content-Encoding": "br"})
                elif self.path.startswith("/trickle"):
                    try:
                        self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                        for _ in range(10_000):
                            self.wfile.write(b"X-Slow: 1\r\n")
                            self.wfile.flush()
                            owner.trickled += 1
                            if owner.trickle_cut.wait(0.2):
                                break
                    except OSError:
                        owner.trickle_cut.set()  # the client shut the connection
                else:
                    body = json.dumps(
                        {
                            "status": "success",
                            "data": {"resultType": "scalar", "result": [1, "0.5"]},
                        }
                    )
                    self._send(200, body.encode(), {"Content-Type": "application/json"})

            def _send(self, code: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(code)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass  # the client stopped reading: what the cap is for

            def log_message(self, *_args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, *_args: Any) -> None:
                pass  # clients cut off on purpose: the point of these tests

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.trickle_cut.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    server = Hostile()
    yield server
    server.close()


@pytest.fixture
def tarpit() -> Iterator[str]:
    """Accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    listener.close()


def measure(address: str, *, timeout: float = 10.0, budget: float = 2.0) -> Any:
    return PrometheusMeasurer().measure("up", address=address, timeout=timeout, budget=budget)


def test_a_gzip_bomb_is_refused_at_the_decompressed_limit(hostile: Hostile) -> None:
    outcome = measure(f"{hostile.url}/bomb")
    assert isinstance(outcome, QueryFailure)
    assert outcome.kind == "unexpected" and outcome.permanent
    assert "larger than allowed after decompression (limit prometheusBody: 2 MiB)" in (
        outcome.message
    )
    assert len(BOMB) < 256 * 1024  # the hostile input is small on the wire


def test_a_tarpit_ends_at_the_budget_whatever_the_metric_timeout(tarpit: str) -> None:
    # timeout: 366 days (the most a Duration takes) is cut to the measurement's budget.
    outcome = measure(tarpit, timeout=366 * 86400, budget=1.0)
    assert isinstance(outcome, QueryFailure) and outcome.kind == "unavailable"
    assert "no complete answer within 1.0s" in outcome.message
    assert "the measurement's budget is 1s" in outcome.message


def test_headers_trickled_slower_than_the_budget_are_cut_off(hostile: Hostile) -> None:
    # Each header arrives well within the socket timeout; only the deadline ends it.
    outcome = measure(f"{hostile.url}/trickle", timeout=5.0, budget=1.0)
    assert isinstance(outcome, QueryFailure) and outcome.kind == "unavailable"
    assert "no complete answer within" in outcome.message
    assert hostile.trickle_cut.wait(5.0), "the client never shut the trickling connection"
    assert hostile.trickled < 10_000


def test_a_200_kb_error_is_cut_with_a_marker(hostile: Hostile) -> None:
    outcome = measure(f"{hostile.url}/error")
    assert isinstance(outcome, QueryFailure) and outcome.kind == "rejected"
    assert "bad_data: xxx" in outcome.message
    assert "[truncated " in outcome.message
    assert len(outcome.message) < 1024


def test_an_encoding_that_cannot_be_bounded_is_refused(hostile: Hostile) -> None:
    outcome = measure(f"{hostile.url}/brotli")
    assert isinstance(outcome, QueryFailure) and outcome.permanent
    assert "encoding 'br'" in outcome.message


def test_a_plain_answer_still_reads(hostile: Hostile) -> None:
    outcome = measure(f"{hostile.url}/ok")
    assert not isinstance(outcome, QueryFailure), outcome
    assert [s.value for s in outcome.samples] == [0.5]


def test_the_session_inflates_in_steps_never_past_the_cap(hostile: Hostile) -> None:
    """The cap holds for the decoded size even where the wire size is far below it."""
    small = Limit("testBody", 64 * 1024, "bytes", "a test's cap", "refused")
    session = BoundedSession(deadline=float("inf"), body_limit=small)
    with pytest.raises(BodyRefused, match="limit testBody: 64 KiB"):
        session.get(f"{hostile.url}/bomb", timeout=5)
    session.close()
    assert PROMETHEUS_BODY.int == 2 * 1024 * 1024
