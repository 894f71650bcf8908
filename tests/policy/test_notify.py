"""Webhook notifications against a real HTTP server on 127.0.0.1.

The server records what it receives. ``/slow`` holds the request longer than the
target's timeout (that wait is the fault under test, not synchronisation); ``/fail``
answers 500. Tests synchronise on ``Notifier.wait_idle`` and the result callback.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from structlog.testing import capture_logs

from controller.api.policy import NotificationTarget
from controller.api.status import Phase, RolloutStatus
from controller.notify import (
    DeliveryResult,
    Notifier,
    SecretNotBound,
    SecretRef,
    detect_events,
    notification_for,
    secret_resolver,
    targets_for,
)
from tests.policy.helpers import berlin, policy, rollout

TOKEN = "T000/B000/XXXXsecretXXXX"


@dataclass
class Received:
    bodies: dict[str, list[Any]] = field(default_factory=dict)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, path: str) -> int:
        with self.lock:
            return len(self.bodies.get(path, []))


@pytest.fixture
def server() -> Iterator[tuple[str, Received]]:
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            path = self.path.split("/")[1]
            with received.lock:
                received.bodies.setdefault(path, []).append(body)
            if path == "slow":
                received.release.wait(5.0)  # the fault: slower than the client's timeout
            status = 500 if path == "fail" else 404 if path == "gone" else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", received
    finally:
        received.release.set()
        httpd.shutdown()
        httpd.server_close()


def target(name: str, *, kind: str = "generic", timeout: float = 2.0, retries: int = 0) -> Any:
    return NotificationTarget.model_validate(
        {
            "name": name,
            "type": kind,
            "urlFrom": {"secretKeyRef": {"name": "hooks", "key": name}},
            "timeout": timeout,
            "retries": retries,
        }
    )


def rolled_back() -> tuple[Any, RolloutStatus]:
    ro = rollout(annotations={"deployctl.io/requested-by": "ci@example.com"})
    status = RolloutStatus.model_validate(
        {
            "phase": "RolledBack",
            "reason": "AnalysisFailed",
            "message": "error-rate 0.12 above 0.05",
            "analysisRuns": [
                {
                    "key": "step-1",
                    "revision": "bbb",
                    "phase": "Failed",
                    "startedAt": "2026-12-07T09:00:00Z",
                    "metrics": [
                        {
                            "name": "error-rate",
                            "phase": "Failed",
                            "message": "0.12 > max 0.05",
                            "measurements": [
                                {"value": "0.12", "phase": "Failed", "at": "2026-12-07T09:02:00Z"}
                            ],
                        }
                    ],
                }
            ],
            "history": [
                {
                    "revision": "bbb",
                    "images": {"app": "shop/checkout:1.4.2"},
                    "requestedBy": "ci@example.com",
                    "reason": "release 1.4.2",
                    "outcome": "RolledBack",
                }
            ],
        }
    )
    return ro, status


def make_notifier(urls: dict[str, str], results: list[DeliveryResult]) -> Notifier:
    lock = threading.Lock()

    def on_result(result: DeliveryResult) -> None:
        with lock:
            results.append(result)

    return Notifier(lambda ref: urls[ref.key], backoff=0.0, on_result=on_result)


def ref(key: str) -> SecretRef:
    return SecretRef(namespace="shop", name="hooks", key=key)


def test_generic_and_slack_payloads_are_delivered(server: tuple[str, Received]) -> None:
    base, received = server
    results: list[DeliveryResult] = []
    notifier = make_notifier({"plain": f"{base}/plain", "chat": f"{base}/chat/{TOKEN}"}, results)
    ro, status = rolled_back()
    notification = notification_for(ro, status, "rolledBack", now=berlin(2026, 12, 7, 10, 3))
    queued = notifier.notify(
        notification, [(ref("plain"), target("plain")), (ref("chat"), target("chat", kind="slack"))]
    )
    assert queued == 2
    assert notifier.wait_idle(5.0)
    notifier.close()
    assert sorted((r.target, r.delivered, r.attempts) for r in results) == [
        ("chat", True, 1),
        ("plain", True, 1),
    ]
    (generic,) = received.bodies["plain"]
    assert generic["event"] == "rolledBack"
    assert generic["rollout"] == {"namespace": "shop", "name": "checkout"}
    assert generic["images"] == {"app": "shop/checkout:1.4.2"}
    assert generic["requestedBy"] == "ci@example.com"
    assert generic["evidence"] == [
        "step-1/error-rate Failed last value 0.12 at 2026-12-07T09:02:00Z: 0.12 > max 0.05"
    ]
    (slack,) = received.bodies["chat"]
    assert slack["text"].startswith(":rewind: shop/checkout rolled back revision bbb")
    assert slack["blocks"][0]["type"] == "section"
    evidence = [b for b in slack["blocks"] if "Evidence" in b.get("text", {}).get("text", "")]
    assert evidence and "error-rate Failed" in evidence[0]["text"]["text"]
    assert "0.12 &gt; max 0.05" in evidence[0]["text"]["text"]  # mrkdwn-escaped


def test_a_slow_webhook_times_out_and_never_blocks_the_caller(
    server: tuple[str, Received],
) -> None:
    base, received = server
    results: list[DeliveryResult] = []
    notifier = make_notifier({"slow": f"{base}/slow/{TOKEN}"}, results)
    ro, status = rolled_back()
    started = time.monotonic()
    notifier.notify(
        notification_for(ro, status, "rolledBack", now=berlin(2026, 12, 7, 10, 3)),
        [(ref("slow"), target("slow", timeout=0.2))],
    )
    assert time.monotonic() - started < 0.1  # the reconcile goes on at once
    assert notifier.wait_idle(5.0)
    notifier.close()
    assert [(r.delivered, r.attempts, r.error) for r in results] == [
        (False, 1, "timed out after 0.2s")
    ]
    assert received.count("slow") == 1


def test_a_failing_webhook_is_retried_then_given_up_and_the_url_is_never_logged(
    server: tuple[str, Received],
) -> None:
    base, received = server
    results: list[DeliveryResult] = []
    urls = {
        "fail": f"{base}/fail/{TOKEN}",
        "gone": f"{base}/gone/{TOKEN}",
        "closed": f"http://127.0.0.1:9/{TOKEN}",  # discard port: connection refused
    }
    notifier = make_notifier(urls, results)
    ro, status = rolled_back()
    notification = notification_for(ro, status, "rolledBack", now=berlin(2026, 12, 7, 10, 3))
    with capture_logs() as logs:
        notifier.notify(
            notification,
            [
                (ref("fail"), target("fail", retries=2)),
                (ref("gone"), target("gone", retries=2)),
                (ref("closed"), target("closed", retries=1)),
                (ref("missing"), target("missing")),
            ],
        )
        assert notifier.wait_idle(10.0)
    notifier.close()
    outcome = {r.target: (r.delivered, r.attempts, r.error) for r in results}
    assert outcome["fail"] == (False, 3, "HTTP 500")  # 1 try + 2 retries
    assert received.count("fail") == 3
    assert outcome["gone"] == (False, 1, "HTTP 404")  # a 404 is not retried
    assert outcome["closed"][:2] == (False, 2)
    assert outcome["closed"][2].startswith("connection failed")
    assert outcome["missing"][:2] == (False, 0)
    assert "secret shop/hooks key missing" in outcome["missing"][2]
    failures = [entry for entry in logs if entry["event"] == "notification failed"]
    assert {entry["target"] for entry in failures} == {"fail", "gone", "closed"}
    text = repr(logs) + repr(results)
    assert TOKEN not in text and base not in text and "127.0.0.1:9" not in text


def test_queue_full_drops_instead_of_blocking(server: tuple[str, Received]) -> None:
    base, received = server
    results: list[DeliveryResult] = []
    gate = threading.Event()

    def resolve(ref: SecretRef) -> str:
        gate.wait(5.0)  # holds the single worker so the queue fills
        return f"{base}/plain"

    notifier = Notifier(resolve, workers=1, max_pending=1, on_result=results.append)
    ro, status = rolled_back()
    n = notification_for(ro, status, "paused", now=berlin(2026, 12, 7, 10, 3))
    queued = notifier.notify(
        n, [(ref("a"), target("a")), (ref("b"), target("b")), (ref("c"), target("c"))]
    )
    gate.set()
    assert notifier.wait_idle(5.0)
    notifier.close()
    assert queued >= 1 and queued < 3
    assert sum(1 for r in results if r.error == "queue full") == 3 - queued


def test_detect_events_and_targets() -> None:
    before = RolloutStatus.model_validate(
        {"phase": "Progressing", "history": [{"revision": "a", "startedAt": "t0"}]}
    )
    promoted = before.model_copy(
        update={
            "phase": Phase.HEALTHY,
            "history": [before.history[0].model_copy(update={"outcome": "Promoted"})],
        }
    )
    assert detect_events(before, promoted) == ("promoted",)
    assert detect_events(promoted, promoted) == ()
    started = RolloutStatus.model_validate(
        {
            "phase": "Paused",
            "reason": "AwaitingApproval",
            "history": [
                {"revision": "a", "startedAt": "t0", "outcome": "Promoted"},
                {"revision": "b", "startedAt": "t1"},
            ],
        }
    )
    assert detect_events(promoted, started) == ("started", "paused")
    frozen = RolloutStatus(phase=Phase.PAUSED, reason="FrozenUntil")
    assert detect_events(None, frozen) == ("paused",)


def test_a_finished_hook_is_notified_once_with_its_outcome_as_evidence() -> None:
    def with_hook(phase: str, message: str) -> RolloutStatus:
        run = {
            "key": "hook-onAbort",
            "revision": "b",
            "startedAt": "t2",
            "phase": phase,
            "metrics": [{"name": "undo-migration", "phase": phase, "message": message}],
        }
        return RolloutStatus.model_validate({"phase": "Degraded", "analysisRuns": [run]})

    running = with_hook("Running", "")
    done = with_hook("Successful", "undo-migration: Job shop-undo-1 succeeded")
    assert detect_events(running, done) == ("hookFinished",)
    assert detect_events(done, done) == ()
    note = notification_for(rollout(), done, "hookFinished", now=berlin(2026, 12, 7, 10, 3))
    assert note.evidence == (
        "hook-onAbort/undo-migration Successful: undo-migration: Job shop-undo-1 succeeded",
    )

    spec = {
        "notifications": [
            {"name": "all", "urlFrom": {"secretKeyRef": {"name": "hooks", "key": "all"}}},
            {
                "name": "bad-news",
                "type": "slack",
                "urlFrom": {"secretKeyRef": {"name": "hooks", "key": "slack"}},
                "events": ["aborted", "rolledBack"],
            },
        ]
    }
    chosen = targets_for([policy(spec, namespace="deployctl-system")], "promoted")
    assert [(s.namespace, s.key, t.name) for s, t in chosen] == [("deployctl-system", "all", "all")]
    assert len(targets_for([policy(spec)], "rolledBack")) == 2


def test_one_namespace_with_a_hanging_webhook_never_holds_up_another(
    server: tuple[str, Received],
) -> None:
    base, received = server
    results: list[DeliveryResult] = []
    other_done = threading.Event()

    def on_result(result: DeliveryResult) -> None:
        results.append(result)
        if result.rollout.startswith("cart/"):
            other_done.set()

    urls = {"slow": f"{base}/slow/{TOKEN}", "plain": f"{base}/plain"}
    notifier = Notifier(lambda ref: urls[ref.key], workers=2, backoff=0.0, on_result=on_result)
    ro, status = rolled_back()
    hanging = notification_for(ro, status, "rolledBack", now=berlin(2026, 12, 7, 10, 3))
    for _ in range(5):
        notifier.notify(hanging, [(ref("slow"), target("slow", timeout=5.0))])
    cart = rollout(name="cart", namespace="cart")
    other = notification_for(cart, status, "rolledBack", now=berlin(2026, 12, 7, 10, 3))
    notifier.notify(other, [(SecretRef("cart", "hooks", "plain"), target("plain"))])
    # The other namespace is served while the first one's webhook still hangs, and the
    # hanging namespace has one delivery in flight, not every worker.
    assert other_done.wait(5.0)
    assert received.count("slow") == 1
    assert [r.delivered for r in results if r.rollout == "cart/cart"] == [True]
    received.release.set()
    assert notifier.wait_idle(30.0)
    notifier.close()


def test_a_delivery_stops_at_its_deadline_whatever_its_retries(
    server: tuple[str, Received],
) -> None:
    base, received = server
    results: list[DeliveryResult] = []
    notifier = Notifier(
        lambda ref: f"{base}/fail/{TOKEN}",
        backoff=0.2,
        delivery_deadline=1.0,
        on_result=results.append,
    )
    ro, status = rolled_back()
    notifier.notify(
        notification_for(ro, status, "rolledBack", now=berlin(2026, 12, 7, 10, 3)),
        [(ref("fail"), target("fail", retries=10))],
    )
    assert notifier.wait_idle(10.0)
    notifier.close()
    (result,) = results
    assert not result.delivered
    assert 1 <= result.attempts < 11 and received.count("fail") == result.attempts
    assert result.error == (
        f"HTTP 500; stopped after {result.attempts} attempt(s): the delivery's 1 s are spent "
        "(limit notificationDelivery: 60 s)"
    )


def test_a_webhook_secret_serves_only_the_namespaces_it_names() -> None:
    secrets = {
        "team-hooks": ({"deployctl.io/notification-namespaces": "shop, cart"}, {"url": "u1"}),
        "platform": ({}, {"url": "u2"}),
    }
    resolve = secret_resolver(lambda namespace, name: secrets[name])
    own = SecretRef("deployctl-system", "platform", "url", policy_namespace="deployctl-system")
    assert resolve(own) == "u2"  # a cluster-wide policy uses what sits next to it
    assert resolve(SecretRef("deployctl-system", "team-hooks", "url", "cart")) == "u1"
    with pytest.raises(SecretNotBound) as refused:
        resolve(SecretRef("deployctl-system", "platform", "url", policy_namespace="shop"))
    assert str(refused.value) == (
        "secret deployctl-system/platform key url may not be used by DeliveryPolicies of "
        "namespace shop: the Secret must list it in the annotation "
        "deployctl.io/notification-namespaces (kubectl -n deployctl-system annotate secret "
        "platform deployctl.io/notification-namespaces=shop)"
    )
    [(secret, _target)] = targets_for(
        [
            policy(
                {
                    "notifications": [
                        {
                            "name": "t",
                            "urlFrom": {"secretKeyRef": {"name": "platform", "key": "url"}},
                        }
                    ]
                }
            )
        ],
        "started",
    )
    assert secret.policy_namespace == "shop"
