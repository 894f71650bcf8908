"""The web address policy on the sandbox, through the running controller.

A tenant's AnalysisTemplate chooses where the controller sends a request. By default a
web check to the cloud metadata address, to loopback, to the API server and to another
namespace's Service is refused, each with a message naming the rule, in the Rollout's
status and Events; with the operator's flags each is allowed (the check is then sent:
it gets a reply, or fails to connect, but is not refused).

The sandbox's pods live on loopback addresses (127.x.y.z) and its API server on
127.0.0.1, so these controllers run with ``--service-address pods`` and only the
allowances each test names.
"""

from __future__ import annotations

from typing import Any

from tests.integration.harness import Cluster, demo_rollout, settled
from tests.integration.web_helpers import (
    deploy_v1_then_v2,
    measured,
    other_namespace,
    web_template,
)
from tests.security.servers import echo_server
from tests.waiting import wait_until

METADATA = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"


def targets(cluster: Cluster, *, loopback_url: str, apiserver: str, other: str) -> dict[str, str]:
    """Rollout name -> template; one template per target."""
    urls = {
        "metadata": METADATA,
        "loopback": loopback_url,
        "apiserver": f"{apiserver}/version",
        "othernamespace": f"http://web.{other}.svc:8080/",
    }
    for name, url in urls.items():
        cluster.create_template(web_template(f"to-{name}", {"url": url}))
    return {name: f"to-{name}" for name in urls}


def serve_other_namespace(api: Any, other: str) -> None:
    """A Service ``web`` in the other namespace with a ready demo-app pod behind it."""
    there = Cluster(api, other)
    there.create_service("web", {"app": "web"}, rollout="web")
    there.apply_rollout(
        demo_rollout("web", version="v1", replicas=1, strategy={"canary": {"steps": []}})
    )
    settled(there, "web", timeout=120)


def test_checks_to_metadata_loopback_apiserver_and_other_namespaces_are_refused(
    cluster: Cluster, start_controller: Any, control_plane: Any, kube_api: Any
) -> None:
    start_controller(args=["--no-leader-elect", "--service-address", "pods"])
    with other_namespace(kube_api, cluster.namespace) as other, echo_server("127.0.0.1") as app:
        serve_other_namespace(kube_api, other)
        checks = targets(
            cluster, loopback_url=f"{app.url}/", apiserver=control_plane.server, other=other
        )
        stable = deploy_v1_then_v2(cluster, checks)
        expected = {
            "metadata": "169.254.169.254 is refused by rule link-local (169.254.0.0/16",
            "loopback": "127.0.0.1 is refused by rule loopback (127.0.0.0/8",
            "apiserver": "127.0.0.1 is refused by rule apiserver (the Kubernetes API server)",
            "othernamespace": f"is refused by rule other-namespace (a Service of namespace {other}",
        }
        for name, text in expected.items():
            status = settled(cluster, name, timeout=120)
            assert status["phase"] == "Degraded", (name, status)
            assert status["stableRevision"] == stable[name]
            assert "web address policy" in status["message"] and text in status["message"], (
                name,
                status["message"],
            )
        # The Event is written after the status the loop above saw: wait for each.
        wait_until(
            lambda: " ".join(str(e.message) for e in cluster.events()),
            ok=lambda messages: all(text in messages for text in expected.values()),
            timeout=30,
            what="an Event naming each refusal",
        )
        assert not app.seen.requests  # nothing reached the loopback server


def test_each_is_allowed_when_the_operator_configures_it(
    cluster: Cluster, start_controller: Any, control_plane: Any, kube_api: Any
) -> None:
    with other_namespace(kube_api, cluster.namespace) as other, echo_server("127.0.0.1") as app:
        start_controller(
            args=[
                "--no-leader-elect",
                "--service-address",
                "pods",
                # Pods, the metadata address and 127.0.0.1 (so the API server too) by
                # address; the other namespace by name.
                "--web-allow-cidrs",
                "127.0.0.0/8,169.254.169.254/32",
                "--web-allow-cidrs",
                "127.0.0.1/32",
                "--web-allow-namespaces",
                other,
            ]
        )
        serve_other_namespace(kube_api, other)
        checks = targets(
            cluster, loopback_url=f"{app.url}/", apiserver=control_plane.server, other=other
        )
        stable = deploy_v1_then_v2(cluster, checks)
        for name in ("loopback", "othernamespace"):
            status = settled(cluster, name, timeout=120)
            assert status["phase"] == "Healthy" and status["stableRevision"] != stable[name], (
                name,
                status,
            )
        assert app.seen.requests  # the loopback check reached the server
        # Sent, not refused: the API server's certificate is not one the controller trusts;
        # the metadata address answers or not depending on the machine.
        apiserver = measured(cluster, "apiserver", stable["apiserver"])
        assert "TLS certificate not trusted" in apiserver["message"], apiserver
        metadata = measured(cluster, "metadata", stable["metadata"])
        assert f"GET {METADATA} ->" in metadata["message"] or "no reply" in metadata["message"]
        for result in (apiserver, metadata):
            assert "address policy" not in result["message"]
