"""The dashboard's HTTP server against the sandbox's real apiserver, without a browser.

Pages readable without JavaScript, the JSON views, live updates over server-sent events
(pushed by the shared watches, one subscription per open stream, released when the
client goes away), the guards of the local dashboard (Host, token, Origin), the static
assets, and the operator's read-only dashboard (``deployctl controller
--dashboard-address``).
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from controller.dashboard.actions import Actions
from controller.dashboard.server import DashboardServer
from controller.dashboard.watches import Watches
from controller.kube import Kube
from tests.dashboard.helpers import wait_until
from tests.integration.harness import GROUP, VERSION, Cluster, demo_rollout, running_controller

STEPS = [{"setWeight": 25}, {"pause": {}}]


@pytest.fixture
def served(control_plane: Any, cluster: Cluster) -> Iterator[DashboardServer]:
    kube = Kube.from_kubeconfig(str(control_plane.kubeconfig))
    watches = Watches(kube, namespace=cluster.namespace).start()
    assert watches.wait_for_sync(30)
    server = DashboardServer(
        watches,
        host="127.0.0.1",
        port=0,
        actions=Actions(kube, user="tester"),
        heartbeat=0.3,
        min_interval=0.05,
    ).start()
    try:
        yield server
    finally:
        server.stop()
        watches.stop()
        kube.close()


def request(
    url: str,
    path: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: str | None = None,
) -> tuple[int, dict[str, str], str]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        connection.close()


class EventStream:
    """A minimal server-sent events reader over a raw socket."""

    def __init__(self, url: str, path: str) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname or "", parts.port or 80), timeout=30)
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
        self.buffer = b""

    def next_update(self) -> dict[str, Any]:
        while True:
            while b"\n\n" not in self.buffer:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise AssertionError("the stream ended")
                self.buffer += chunk
            block, self.buffer = self.buffer.split(b"\n\n", 1)
            lines = block.decode().splitlines()
            if "event: update" in lines:
                data = next(line for line in lines if line.startswith("data: "))
                return dict(json.loads(data.removeprefix("data: ")))

    def close(self) -> None:
        self.sock.close()


def set_status(cluster: Cluster, name: str, status: dict[str, Any]) -> None:
    cluster.custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, cluster.namespace, "rollouts", name, {"status": status}
    )


def test_pages_json_and_live_updates(served: DashboardServer, cluster: Cluster) -> None:
    ns = cluster.namespace
    cluster.apply_rollout(demo_rollout("shop", version="v1", strategy={"canary": {"steps": STEPS}}))
    set_status(cluster, "shop", {"phase": "Healthy", "stableRevision": "aaaa1111"})
    wait_until(
        lambda: (
            served.watches.rollout(ns, "shop") is not None
            and (served.watches.rollout(ns, "shop") or {}).get("status")
        ),
        timeout=30,
        what="the watch to see the Rollout",
    )
    # The list without JavaScript: a server-rendered table, filters as a GET form.
    code, headers, page = request(served.url, "/")
    assert code == 200 and f'data-rollout="{ns}/shop"' in page and "Healthy" in page
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    code, _, page = request(served.url, "/?phase=Degraded")
    assert code == 200 and "no rollouts match" in page
    code, _, body = request(served.url, "/api/rollouts")
    assert [row["name"] for row in json.loads(body)] == ["shop"]
    code, _, body = request(served.url, f"/api/rollouts/{ns}/shop")
    assert json.loads(body)["phase"] == "Healthy"
    assert request(served.url, f"/rollouts/{ns}/nope")[0] == 404
    assert request(served.url, "/rollouts/other-namespace/shop")[0] == 404

    stream = EventStream(served.url, f"/stream/rollouts/{ns}/shop")
    try:
        first = stream.next_update()
        assert 'data-phase="Healthy"' in first["html"]
        set_status(
            cluster,
            "shop",
            {"phase": "Degraded", "reason": "AnalysisFailed", "message": "error-rate 0.3 > max"},
        )
        update = stream.next_update()
        while 'data-phase="Degraded"' not in update["html"]:
            update = stream.next_update()
        assert "error-rate 0.3 &gt; max" in update["html"]
        assert served.watches.subscription_count == 1
    finally:
        stream.close()
    # A page that goes away is released at the next write (update or heartbeat).
    wait_until(
        lambda: served.watches.subscription_count == 0,
        timeout=10,
        what="the closed stream's subscription to be released",
    )


def test_the_local_dashboard_answers_only_its_own_pages(
    served: DashboardServer, cluster: Cluster
) -> None:
    ns = cluster.namespace
    cluster.apply_rollout(demo_rollout("shop", version="v1", strategy={"canary": {"steps": STEPS}}))
    wait_until(lambda: served.watches.rollout(ns, "shop"), timeout=30, what="the Rollout")
    # A name another site controls, pointed at 127.0.0.1 (DNS rebinding), is refused.
    assert request(served.url, "/", headers={"Host": "attacker.example:3100"})[0] == 421
    path = f"/rollouts/{ns}/shop/actions/abort"
    code, _, body = request(served.url, path, method="POST", headers={"Accept": "application/json"})
    assert code == 403 and "did not come from this dashboard" in body
    token = {"X-Deployctl-Token": served.token, "Accept": "application/json"}
    code, _, _ = request(
        served.url, path, method="POST", headers={**token, "Origin": "http://attacker.example"}
    )
    assert code == 403
    # With the token, the offer decides: no controller holds a Lease here.
    code, _, body = request(served.url, path, method="POST", headers=token)
    assert code == 409 and "no deployctl controller is running" in json.loads(body)["message"]
    code, _, page = request(served.url, f"/rollouts/{ns}/shop/confirm/abort")
    assert code == 409 and "no deployctl controller is running" in page
    assert "deployctl.io/request" not in (
        cluster.rollout("shop")["metadata"].get("annotations") or {}
    )
    code, headers, script = request(served.url, "/static/vendor/uPlot.iife.min.js")
    assert code == 200 and headers["Content-Type"].startswith("text/javascript")
    assert "uPlot" in script
    assert request(served.url, "/static/../../pyproject.toml")[0] == 404


def test_the_operator_serves_a_read_only_dashboard(
    control_plane: Any, cluster: Cluster, tmp_path: Path
) -> None:
    ns = cluster.namespace
    with running_controller(
        kubeconfig=str(control_plane.kubeconfig),
        # No analysis here: the address is never asked.
        prometheus_url="http://127.0.0.1:9",
        log_dir=tmp_path,
        args=["--no-leader-elect", "--dashboard-address", "127.0.0.1:0", "--namespace", ns],
    ) as controller:

        def dashboard_url() -> str | None:
            for line in controller.log_text().splitlines():
                if "serving the dashboard" in line and line.startswith("{"):
                    return str(json.loads(line)["url"])
            return None

        url = str(wait_until(dashboard_url, timeout=30, what="the dashboard's address"))
        cluster.apply_rollout(
            demo_rollout("shop", version="v1", replicas=0, strategy={"canary": {"steps": STEPS}})
        )
        page = wait_until(
            lambda: (lambda r: r[2] if r[0] == 200 and "Healthy" in r[2] else None)(
                request(url, f"/rollouts/{ns}/shop", headers={"Host": "deployctl-dashboard"})
            ),
            timeout=60,
            what="the operator's dashboard to show the Rollout Healthy",
        )
        assert "Read-only dashboard" in page and 'name="deployctl-token"' not in page
        code, _, _ = request(url, f"/rollouts/{ns}/shop/actions/promote", method="POST")
        assert code == 405
        assert controller.process.poll() is None, controller.log_text()[-3000:]
