"""Long instant queries go as a form POST (controller.analysis.prometheus): a server that
refuses the POST with 405 is asked with a GET, and a POST's error answer is mapped as a
GET's. The servers are local stand-ins for what a proxy in front of Prometheus may
answer; the POST against the real Prometheus is in test_batch_real.py."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread

import pytest

from controller.analysis.prometheus import POST_OVER, PrometheusMeasurer
from controller.analysis.values import QueryFailure, QueryResult

LONG = 'sum(up{job=~"' + "|".join(f"job{i}" for i in range(POST_OVER // 5)) + '"})'
SCALAR = json.dumps({"status": "success", "data": {"resultType": "scalar", "result": [1, "2"]}})
REJECTED = json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error"})


class Server:
    """Answers GET with a scalar; POST with ``post_status``; records (method, query)."""

    def __init__(self, post_status: int) -> None:
        self.seen: list[tuple[str, str]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _reply(self, status: int, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                form = urllib.parse.urlsplit(self.path).query
                owner.seen.append(("GET", urllib.parse.parse_qs(form)["query"][0]))
                self._reply(200, SCALAR)

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                owner.seen.append(("POST", urllib.parse.parse_qs(body)["query"][0]))
                self._reply(post_status, SCALAR if post_status == 200 else REJECTED)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    running = Server(request.param)
    yield running
    running.close()


def measure(server: Server, promql: str) -> object:
    return PrometheusMeasurer(server.url).measure(promql, address=None, timeout=5, budget=5)


@pytest.mark.parametrize("server", [200], indirect=True)
def test_a_long_query_is_posted_and_a_short_one_is_a_get(server: Server) -> None:
    long_answer = measure(server, LONG)
    assert isinstance(long_answer, QueryResult) and long_answer.samples[0].value == 2
    measure(server, "up")
    assert server.seen == [("POST", LONG), ("GET", "up")]


@pytest.mark.parametrize("server", [405], indirect=True)
def test_a_server_refusing_the_post_is_asked_with_a_get(server: Server) -> None:
    answer = measure(server, LONG)
    assert isinstance(answer, QueryResult) and answer.samples[0].value == 2
    assert server.seen == [("POST", LONG), ("GET", LONG)]


@pytest.mark.parametrize("server", [400], indirect=True)
def test_a_posted_query_prometheus_rejects_is_a_rejection(server: Server) -> None:
    answer = measure(server, LONG)
    assert isinstance(answer, QueryFailure) and answer.kind == "rejected"
    assert "bad_data: parse error" in answer.message
    assert server.seen == [("POST", LONG)]  # never retried
