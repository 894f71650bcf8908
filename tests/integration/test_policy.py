"""Delivery policy enforced by the running operator, driven through the CLI.

A promotion gate holds production until staging promoted the same image; webhooks hear
about starts and promotions while a webhook that hangs delays nothing; a freeze holds a
new revision (the running one untouched) until an exempt override with a reason lets it
through; an approval rule holds one until ``deployctl approve``.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.integration.harness import GROUP, VERSION, Cluster, demo_rollout
from tests.waiting import wait_until

STEPS = [{"setWeight": 50}, {"pause": {"duration": "1s"}}]
LEASE = "ctl"


class Receiver:
    """A webhook endpoint: records JSON bodies; ``/slow`` never answers in time."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        receiver = self
        release = threading.Event()
        self.release = release

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path == "/slow":
                    release.wait(30)  # hangs past the notifier's 1 s timeout
                else:
                    receiver.bodies.append(body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def events_for(self, rollout: str) -> list[str]:
        return [
            str(b.get("event"))
            for b in self.bodies
            if (b.get("rollout") or {}).get("name") == rollout
        ]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def rollout(name: str, version: str, **spec: Any) -> dict[str, Any]:
    body = demo_rollout(name, version=version, replicas=2, strategy={"canary": {"steps": STEPS}})
    body["spec"].update(spec)
    return body


def policy(cluster: Cluster, name: str, spec: dict[str, Any]) -> None:
    cluster.custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        cluster.namespace,
        "deliverypolicies",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "DeliveryPolicy",
            "metadata": {"name": name},
            "spec": spec,
        },
    )


def delete_policy(cluster: Cluster, name: str) -> None:
    cluster.custom.delete_namespaced_custom_object(
        GROUP, VERSION, cluster.namespace, "deliverypolicies", name
    )


def status_when(cluster: Cluster, name: str, ok: Any, *, what: str, timeout: float = 60) -> Any:
    return wait_until(lambda: cluster.status(name), ok=ok, timeout=timeout, what=what)


def promoted(cluster: Cluster, name: str, *, not_revision: str | None = None) -> dict[str, Any]:
    return dict(
        status_when(
            cluster,
            name,
            lambda s: (
                s.get("phase") == "Healthy"
                and s.get("stableRevision") not in (None, not_revision)
                and s.get("observedGeneration") == cluster.rollout(name)["metadata"]["generation"]
            ),
            what=f"{name} promoted",
        )
    )


def test_gates_notifications_freezes_overrides_and_approvals(
    cluster: Cluster, start_controller: Any, control_plane: Any, receiver: Receiver
) -> None:
    ns = cluster.namespace
    env = {
        **os.environ,
        "KUBECONFIG": str(control_plane.kubeconfig),
        "DEPLOYCTL_CONTROLLER_NAMESPACE": ns,
        "DEPLOYCTL_CONTROLLER_LEASE": LEASE,
        "DEPLOYCTL_USER": "release-manager",
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "controller.cli", *args, "-n", ns],
            capture_output=True,
            text=True,
            timeout=90,
            env=env,
        )

    # The controller's namespace is this test's: policies here are the cluster default.
    start_controller(
        [
            "--lease-namespace",
            ns,
            "--lease-name",
            LEASE,
            # Generous: a loaded machine must not cost the leader its Lease mid-test.
            "--lease-duration",
            "15",
            "--renew-deadline",
            "10",
            "--retry-period",
            "0.5",
        ]
    )
    cluster.apply_rollout(rollout("shop", "v1"))
    v1 = promoted(cluster, "shop")["stableRevision"]

    # Promotion gate: prod may run v2 only once shop (staging) promoted v2.
    cluster.apply_rollout(rollout("prod", "v2", requires={"rollout": f"{ns}/shop"}))
    held = status_when(
        cluster, "prod", lambda s: s.get("reason") == "AwaitingGate", what="prod held by its gate"
    )
    assert held["phase"] == "Paused" and "deployctl/demo-app:v2" in held["message"]
    assert not [
        rs
        for rs in cluster.apps.list_namespaced_replica_set(ns).items
        if rs.metadata.labels.get("deployctl.io/rollout") == "prod"
    ]

    # Notifications: one webhook that answers, one that hangs (timeout 1 s, no retry).
    cluster.core.create_namespaced_secret(
        ns,
        {
            "metadata": {"name": "hooks"},
            "data": {
                key: base64.b64encode(f"{receiver.url}/{key}".encode()).decode()
                for key in ("ok", "slow")
            },
        },
    )
    policy(
        cluster,
        "notify",
        {
            "notifications": [
                {
                    "name": "team",
                    "urlFrom": {"secretKeyRef": {"name": "hooks", "key": "ok"}},
                    "events": ["started", "paused", "promoted", "aborted"],
                },
                {
                    "name": "hangs",
                    "urlFrom": {"secretKeyRef": {"name": "hooks", "key": "slow"}},
                    "timeout": "1s",
                    "retries": 0,
                },
            ]
        },
    )
    started = time.monotonic()
    cluster.apply_rollout(rollout("shop", "v2"))
    v2 = promoted(cluster, "shop", not_revision=v1)["stableRevision"]
    assert time.monotonic() - started < 30  # the hanging webhook delayed nothing
    prod = promoted(cluster, "prod")
    gate_notes = [n for h in prod["history"] for n in h.get("events", [])]
    assert any(f"promoted in {ns}/shop" in n for n in gate_notes), gate_notes
    wait_until(
        lambda: receiver.events_for("shop"),
        ok=lambda e: {"started", "promoted"} <= set(e),
        timeout=15,
        what="webhook: shop started and promoted",
    )
    body = next(
        b for b in receiver.bodies if b["event"] == "promoted" and b["rollout"]["name"] == "shop"
    )
    assert body["revision"] == v2 and "hooks" not in json.dumps(body)

    # A freeze in force: v3 waits, Paused FrozenUntil <end>; nothing of v2 moves.
    now = datetime.now(UTC)
    end = (now + timedelta(hours=1)).replace(microsecond=0)
    policy(
        cluster,
        "freeze",
        {
            "exemptions": ["hotfix"],
            "freezes": [
                {
                    "name": "release-day",
                    "reason": "release day",
                    "start": (now - timedelta(hours=1)).isoformat(),
                    "end": end.isoformat(),
                }
            ],
        },
    )
    wait_until(
        lambda: cli("list", "-o", "json").returncode, ok=lambda c: c == 0, timeout=10, what="cli"
    )
    result = cli("rollout", "shop", "--image", "app=deployctl/demo-app:v3", "--reason", "feature")
    assert result.returncode == 0, result.stderr
    frozen = status_when(
        cluster, "shop", lambda s: s.get("reason") == "FrozenUntil", what="shop v3 frozen"
    )
    assert frozen["phase"] == "Paused" and frozen["stableRevision"] == v2
    assert "frozen until" in frozen["message"] and "--override-freeze" in frozen["message"]
    revisions = {
        rs.metadata.labels.get("deployctl.io/revision"): rs.spec.replicas
        for rs in cluster.apps.list_namespaced_replica_set(ns).items
        if rs.metadata.labels.get("deployctl.io/rollout") == "shop"
    }
    assert revisions.get(v2) == 2 and set(revisions) <= {v1, v2}  # no ReplicaSet for v3
    cluster.events_when(
        lambda events: [e for e in events if e.involved_object.name == "shop"],
        reason="FrozenUntil",
        what="a FrozenUntil Event about shop",
    )

    # An exempt change with a reason goes ahead; who and why are in history and Events.
    result = cli(
        "rollout",
        "shop",
        "--image",
        "app=deployctl/demo-app:v4",
        "--override-freeze",
        "hotfix",
        "--reason",
        "CVE-2026-0001",
        "--wait",
        "--timeout",
        "60s",
    )
    assert result.returncode == 0, result.stderr
    shop = cluster.status("shop")
    notes = [n for h in shop["history"] for n in h.get("events", [])]
    assert any("overridden" in n and "CVE-2026-0001" in n for n in notes), notes
    cluster.events_when(
        lambda events: [e for e in events if e.involved_object.name == "shop"],
        reason="PolicyOverridden",
        what="a PolicyOverridden Event about shop",
    )

    # An approval rule: v5 waits for `deployctl approve`, which records who approved.
    delete_policy(cluster, "freeze")
    policy(cluster, "approvals", {"approvals": [{"name": "prod-needs-ok", "groups": ["sre"]}]})
    result = cli("rollout", "shop", "--image", "app=deployctl/demo-app:v5")
    assert result.returncode == 0, result.stderr
    status_when(
        cluster,
        "shop",
        lambda s: s.get("reason") == "AwaitingApproval",
        what="shop v5 awaiting approval",
    )
    shown = json.loads(cli("status", "shop", "-o", "json").stdout)
    assert shown["pendingApproval"], shown
    # The 1.20 sandbox has no admission policy: nobody vouches for the approver's name.
    assert "unverified: no admission policy" in shown["pendingApproval"], shown
    text = cli("status", "shop").stdout
    assert "unverified" in text, text
    result = cli("approve", "shop")
    assert result.returncode == 0, result.stderr
    shop = promoted(cluster, "shop", not_revision=shop["stableRevision"])
    notes = [n for h in shop["history"][-1:] for n in h.get("events", [])]
    # The approver is the name the API server knows the CLI's user by (SelfSubjectReview,
    # 1.28+: the sandbox's admin); an older one has no such API, and DEPLOYCTL_USER counts.
    approver = "admin" if control_plane.minor >= (1, 28) else "release-manager"
    assert any(approver in n for n in notes), notes
    assert any("approved by" in n and "unverified" in n for n in notes), notes
    wait_until(
        lambda: receiver.events_for("shop"),
        ok=lambda e: "paused" in e,
        timeout=10,
        what="webhook: shop paused (frozen / awaiting approval)",
    )
