"""Hostile tenants cannot stall, crash or steer the controller: the real operator on the
sandbox, one controller for the whole file.

Each test gives one tenant (its own namespace) a hostile input: a Prometheus ``address``
that is a tarpit, a gzip bomb or a 200 KB ``error``; an alert rules ConfigMap of YAML
aliases; 64 minute-freezes of 366 days; a Service of another team; a label dropped to
escape a freeze; pods running as the controller; a promotion gate into a namespace that
did not agree; a hanging webhook; markup in an annotation. Each asserts the message the
tenant sees, and that a healthy Rollout of another team (``web``, its own namespace)
rolls a new revision out to completion in the same test. The controller's peak RSS is
read from ``/proc`` after the bombs (``-s`` prints it).
"""

from __future__ import annotations

import base64
import gzip
import io
import itertools
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.integration.harness import (
    GROUP,
    VERSION,
    Cluster,
    ControllerProcess,
    demo_rollout,
    running_controller,
)
from tests.waiting import wait_until

STEPS: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {"duration": "1s"}}]
_VERSIONS = itertools.count(2)


# --------------------------------------------------------------------------- hostile servers


def _gzip_bomb(megabytes: int) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9) as out:
        block = b" " * (1 << 20)
        for _ in range(megabytes):
            out.write(block)
    return buffer.getvalue()


class HostileServers:
    """A fake-free set of misbehaving endpoints on 127.0.0.1: ``/bomb`` (200 MiB of
    gzip in 199 KiB), ``/error`` (a 400 with a 200 KB Prometheus error), ``/hook/hang``
    (a webhook that never answers in time), ``/hook/ok`` (records what it receives); and
    a tarpit port that accepts connections and never answers."""

    def __init__(self) -> None:
        self.bomb = _gzip_bomb(200)
        self.hooks: list[dict[str, Any]] = []
        self.release = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path.startswith("/bomb"):
                    self._send(200, owner.bomb, {"Content-Encoding": "gzip"})
                else:
                    error = {"status": "error", "errorType": "bad_data", "error": "e" * 200_000}
                    self._send(400, json.dumps(error).encode(), {})

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path.startswith("/hook/hang"):
                    owner.release.wait(120)
                else:
                    owner.hooks.append(body)
                self._send(200, b"", {})

            def _send(self, code: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(code)
                for name, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass

            def log_message(self, *_args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, *_args: Any) -> None:
                pass  # clients that stop reading are the point

        self.http = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.pit = socket.socket()
        self.pit.bind(("127.0.0.1", 0))
        self.pit.listen(64)
        self._held: list[socket.socket] = []
        threading.Thread(target=self._swallow, daemon=True).start()

    def _swallow(self) -> None:
        while True:
            try:
                self._held.append(self.pit.accept()[0])
            except OSError:
                return

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}"

    @property
    def tarpit(self) -> str:
        return f"http://127.0.0.1:{self.pit.getsockname()[1]}"

    def close(self) -> None:
        self.release.set()
        self.http.shutdown()
        self.http.server_close()
        self.pit.close()
        for conn in self._held:
            conn.close()


# --------------------------------------------------------------------------- one controller


def _namespace(kube_api: Any, prefix: str) -> str:
    name = f"{prefix}-{secrets.token_hex(3)}"
    core: Any = k8s.CoreV1Api(kube_api)
    core.create_namespace({"metadata": {"name": name}})
    return name


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServers]:
    servers = HostileServers()
    yield servers
    servers.close()


@pytest.fixture(scope="module")
def own(control_plane: Any, kube_api: Any) -> Iterator[Cluster]:
    """The controller's own namespace: cluster-wide policies, webhook Secrets."""
    name = _namespace(kube_api, "ctl")
    yield Cluster(kube_api, name)
    k8s.CoreV1Api(kube_api).delete_namespace(name)


@pytest.fixture(scope="module")
def healthy(control_plane: Any, kube_api: Any, node_agent: Any) -> Iterator[Cluster]:
    """Another team's namespace, with a Rollout ``web`` that must keep rolling out."""
    name = _namespace(kube_api, "good")
    cluster = Cluster(kube_api, name)
    cluster.create_service("web-canary", {"app": "web"}, rollout="web")
    yield cluster
    k8s.CoreV1Api(kube_api).delete_namespace(name)


@pytest.fixture(scope="module")
def controller(
    control_plane: Any, prometheus: Any, own: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControllerProcess]:
    with running_controller(
        kubeconfig=str(control_plane.kubeconfig),
        prometheus_url=prometheus.url,
        log_dir=tmp_path_factory.mktemp("tenants"),
        args=["--no-leader-elect", "--lease-namespace", own.namespace],
    ) as proc:
        yield proc


def canary(name: str, version: str, **spec: Any) -> dict[str, Any]:
    body = demo_rollout(
        name,
        version=version,
        replicas=1,
        strategy={"canary": {"steps": STEPS, "scaleDownDelaySeconds": 0}},
    )
    body["spec"].update(spec)
    return body


def status_when(cluster: Cluster, name: str, ok: Any, *, what: str, timeout: float = 90) -> Any:
    return wait_until(lambda: cluster.status(name), ok=ok, timeout=timeout, what=what)


def settled_on(cluster: Cluster, name: str) -> str:
    generation = cluster.rollout(name)["metadata"]["generation"]
    status = status_when(
        cluster,
        name,
        lambda s: s.get("phase") == "Healthy" and s.get("observedGeneration") == generation,
        what=f"{cluster.namespace}/{name} Healthy",
    )
    return str(status["stableRevision"])


def first_deploy(cluster: Cluster, body: dict[str, Any]) -> str:
    cluster.apply_rollout(body)
    return settled_on(cluster, body["metadata"]["name"])


def web_rolls_out(healthy: Cluster) -> None:
    """The other team's Rollout takes a new revision all the way to Healthy."""
    version = f"v{next(_VERSIONS)}"
    if not healthy.custom.list_namespaced_custom_object(
        GROUP, VERSION, healthy.namespace, "rollouts"
    )["items"]:
        first_deploy(healthy, web("v1"))
    before = healthy.status("web").get("stableRevision")
    healthy.apply_rollout(web(version))
    after = settled_on(healthy, "web")
    assert after != before
    assert healthy.status("web")["history"][-1]["outcome"] == "Promoted"


def web(version: str) -> dict[str, Any]:
    body = canary("web", version)
    body["spec"]["strategy"]["canary"]["canaryService"] = "web-canary"
    return body


def template(name: str, metric: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AnalysisTemplate",
        "metadata": {"name": name},
        "spec": {"metrics": [metric]},
    }


def prometheus_metric(address: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "probe",
        "interval": "5s",
        "count": 1,
        "provider": {"prometheus": {"address": address, "query": "up", **extra}},
        "threshold": {"max": 1},
    }


def with_analysis(name: str, version: str, template_name: str) -> dict[str, Any]:
    return canary(name, version, analysis={"templates": [{"name": template_name}]})


def peak_rss_mib(proc: ControllerProcess) -> float:
    status = Path(f"/proc/{proc.process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def analysis_message(cluster: Cluster, name: str, needle: str) -> str:
    def message() -> str:
        status = cluster.status(name)
        runs = status.get("analysisRuns") or []
        texts = [m.get("message", "") for r in runs for m in r.get("metrics") or []]
        return next((t for t in texts if needle in t), "")

    return str(wait_until(message, timeout=90, what=f"{name}: a measurement saying {needle!r}"))


# --------------------------------------------------------------------------- the findings


def test_a_tarpit_prometheus_holds_no_worker_past_the_deadline(
    controller: ControllerProcess, cluster: Cluster, healthy: Cluster, hostile: HostileServers
) -> None:
    # Five Rollouts (more than the four workers) measure against a server that accepts
    # connections and never answers, with the longest timeout a metric may ask for.
    cluster.create_template(template("tarpit", prometheus_metric(hostile.tarpit, timeout="366d")))
    names = [f"pit-{i}" for i in range(5)]
    for name in names:
        first_deploy(cluster, with_analysis(name, "v1", "tarpit"))
    for name in names:
        cluster.apply_rollout(with_analysis(name, "v2", "tarpit"))
    seen = analysis_message(cluster, names[0], "no complete answer")
    # Within the 5 s budget: what the query got of it (a loaded machine starts it late).
    assert f"Prometheus at {hostile.tarpit} unavailable: no complete answer within " in seen
    assert "(after 1 attempt(s) in " in seen and "the measurement's budget is 5s)" in seen
    web_rolls_out(healthy)
    paused = status_when(
        cluster,
        names[-1],
        lambda s: s.get("reason") == "AnalysisProviderUnreachable",
        what="the last tarpit Rollout paused: its provider does not answer",
    )
    # A provider that never answers is an outage (onProviderError: pause): the Rollout
    # waits, measured again at the metric's interval, and no worker is held meanwhile.
    assert paused["phase"] == "Paused" and "paused until the provider answers" in paused["message"]
    probes = controller.metrics_url()
    with urllib.request.urlopen(f"{probes}/healthz?verbose", timeout=10) as reply:
        assert "[+]workers ok" in reply.read().decode()


def test_a_gzip_bomb_is_refused_and_the_controller_stays_small(
    controller: ControllerProcess, cluster: Cluster, healthy: Cluster, hostile: HostileServers
) -> None:
    cluster.create_template(template("bomb", prometheus_metric(f"{hostile.url}/bomb")))
    first_deploy(cluster, with_analysis("bomb", "v1", "bomb"))
    cluster.apply_rollout(with_analysis("bomb", "v2", "bomb"))
    status = status_when(
        cluster, "bomb", lambda s: s.get("aborted"), what="bomb aborted, stable untouched"
    )
    assert (
        "larger than allowed after decompression (limit prometheusBody: 2 MiB)"
        in (status["message"])
    )
    web_rolls_out(healthy)
    peak = peak_rss_mib(controller)
    print(f"\ncontroller peak RSS after the gzip bomb: {peak:.0f} MiB")
    # Before the limit this body took the process from 30 to 475 MiB (pod limit 512 Mi).
    assert peak < 256, f"peak RSS {peak:.0f} MiB"


def test_an_alias_bomb_in_a_rules_configmap_is_refused_before_expansion(
    controller: ControllerProcess, cluster: Cluster, healthy: Cluster
) -> None:
    lines = ['r0: &r0 {alert: X, expr: "up > 0"}']
    for level in range(1, 9):
        lines.append(f"r{level}: &r{level} [" + ", ".join([f"*r{level - 1}"] * 10) + "]")
    bomb = "\n".join(lines) + "\ngroups: [{name: g, rules: *r8}]\n"
    cluster.core.create_namespaced_config_map(
        cluster.namespace, {"metadata": {"name": "alerts"}, "data": {"rules.yaml": bomb}}
    )
    cluster.create_template(
        template(
            "alerts", {"name": "alerts", "interval": "5s", "alertRules": {"configMap": "alerts"}}
        )
    )
    first_deploy(cluster, with_analysis("rules", "v1", "alerts"))
    cluster.apply_rollout(with_analysis("rules", "v2", "alerts"))
    status = status_when(
        cluster, "rules", lambda s: s.get("aborted"), what="rules aborted, stable untouched"
    )
    assert (
        f"ConfigMap {cluster.namespace}/alerts key rules.yaml: line 2: YAML aliases (*name) "
        "are not accepted in rules files (limit yamlAliases: 0)"
    ) in status["message"]
    web_rolls_out(healthy)
    peak = peak_rss_mib(controller)
    print(f"\ncontroller peak RSS after the alias bomb: {peak:.0f} MiB")
    assert peak < 256, f"peak RSS {peak:.0f} MiB"


def test_a_200_kb_prometheus_error_is_cut_and_status_is_written(
    controller: ControllerProcess, cluster: Cluster, healthy: Cluster, hostile: HostileServers
) -> None:
    cluster.create_template(template("loud", prometheus_metric(f"{hostile.url}/error")))
    first_deploy(cluster, with_analysis("loud", "v1", "loud"))
    cluster.apply_rollout(with_analysis("loud", "v2", "loud"))
    status = status_when(
        cluster, "loud", lambda s: s.get("aborted"), what="loud aborted, stable untouched"
    )
    assert "Prometheus rejected the query (400): bad_data: eeee" in status["message"]
    assert "[truncated " in status["message"] and len(status["message"]) <= 1024
    events = [
        e.message
        for e in cluster.events_when(
            lambda found: [e for e in found if e.involved_object.name == "loud"],
            reason="AnalysisFailed",
            what="an AnalysisFailed Event about loud",
        )
        if e.involved_object.name == "loud"
    ]
    assert all(len(m) <= 1024 and "[truncated " in m for m in events)
    assert len(json.dumps(status)) < 64 * 1024
    web_rolls_out(healthy)


def test_64_minute_freezes_of_366_days_hold_one_rollout_and_cost_the_others_nothing(
    controller: ControllerProcess, cluster: Cluster, healthy: Cluster
) -> None:
    first_deploy(cluster, canary("frozen", "v1"))
    freezes = [{"name": f"f{i}", "schedule": "* * * * *", "duration": "366d"} for i in range(64)]
    cluster.custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        cluster.namespace,
        "deliverypolicies",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "DeliveryPolicy",
            "metadata": {"name": "minutes"},
            "spec": {"freezes": freezes},
        },
    )
    cluster.apply_rollout(canary("frozen", "v2"))
    held = status_when(
        cluster, "frozen", lambda s: s.get("reason") == "FrozenUntil", what="frozen held"
    )
    assert held["message"].startswith("frozen until at least ")
    assert (
        "(chained freezes followed as far as limit freezeChain: 64 / limit freezeHorizon: 400 days)"
        in held["message"]
    )
    web_rolls_out(healthy)


def test_a_service_of_another_team_is_not_steered(
    controller: ControllerProcess, cluster: Cluster, healthy: Cluster
) -> None:
    # The payments team's Service in the same namespace, with a selector key of its own.
    selector = {"app": "pay", "team": "payments"}
    cluster.create_service("pay", selector, rollout=None)

    def thief(version: str) -> dict[str, Any]:
        body = canary("thief", version)
        body["spec"]["template"]["metadata"]["labels"] = {"app": "pay", "team": "payments"}
        body["spec"]["selector"]["matchLabels"] = {"app": "pay"}
        body["spec"]["strategy"]["canary"]["canaryService"] = "pay"
        return body

    cluster.apply_rollout(thief("v1"))
    status = status_when(
        cluster,
        "thief",
        lambda s: any(
            c["type"] == "InvalidSpec" and c["status"] == "True" for c in s.get("conditions", [])
        ),
        what="thief refused",
    )
    ns = cluster.namespace
    assert status["message"] == (
        "spec.strategy.canary.canaryService: Service pay does not consent to being managed "
        "by Rollout thief: deployctl changes a Service only when its annotation "
        "deployctl.io/rollout names the Rollout; if this Service is yours, run `kubectl -n "
        f"{ns} annotate service pay deployctl.io/rollout=thief`"
    )
    assert cluster.service_selector("pay") == selector
    assert cluster.replicas_by_revision() == {}  # nothing created either
    web_rolls_out(healthy)
    # Consent given: only the revision key is added; the team's own key stays.
    cluster.core.patch_namespaced_service(
        "pay", ns, {"metadata": {"annotations": {"deployctl.io/rollout": "thief"}}}
    )
    settled_on(cluster, "thief")
    cluster.apply_rollout(thief("v2"))
    canary_rev = status_when(
        cluster, "thief", lambda s: s.get("canaryRevision"), what="thief's canary"
    )["canaryRevision"]
    wait_until(
        lambda: cluster.service_selector("pay"),
        ok=lambda s: s == {**selector, "deployctl.io/revision": canary_rev},
        timeout=60,
        what="only deployctl.io/revision added to the pay Service",
    )
    invalid = [c for c in cluster.status("thief")["conditions"] if c["type"] == "InvalidSpec"]
    assert invalid and invalid[0]["status"] == "False"


def test_a_cluster_wide_freeze_by_namespace_cannot_be_shed(
    controller: ControllerProcess, cluster: Cluster, healthy: Cluster, own: Cluster
) -> None:
    first_deploy(cluster, canary("shedder", "v1"))
    cluster.core.patch_namespace(cluster.namespace, {"metadata": {"labels": {"tier": "prod"}}})
    policy: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DeliveryPolicy",
        "metadata": {"name": f"prod-freeze-{cluster.namespace}"},
        "spec": {
            "namespaceSelector": {"matchLabels": {"tier": "prod"}},
            "freezes": [
                {"name": "release", "start": "2026-01-01T00:00:00Z", "end": "2099-01-01T00:00:00Z"}
            ],
        },
    }
    own.custom.create_namespaced_custom_object(
        GROUP, VERSION, own.namespace, "deliverypolicies", policy
    )
    try:
        body = canary("shedder", "v2")
        body["metadata"]["labels"] = {}  # nothing to drop: the namespace is what selects
        cluster.apply_rollout(body)
        held = status_when(
            cluster, "shedder", lambda s: s.get("reason") == "FrozenUntil", what="shedder frozen"
        )
        assert f"freeze 'release' in policy {own.namespace}/prod-freeze" in held["message"]
        web_rolls_out(healthy)  # an unlabelled namespace is not frozen
    finally:
        own.custom.delete_namespaced_custom_object(
            GROUP, VERSION, own.namespace, "deliverypolicies", policy["metadata"]["name"]
        )


def test_pods_may_not_run_as_the_controller(
    controller: ControllerProcess, own: Cluster, healthy: Cluster
) -> None:
    body = canary("impostor", "v1")
    body["spec"]["template"]["spec"]["serviceAccountName"] = "deployctl-controller"
    own.apply_rollout(body)
    status = status_when(
        own,
        "impostor",
        lambda s: any(
            c["type"] == "InvalidSpec" and c["status"] == "True" for c in s.get("conditions", [])
        ),
        what="impostor refused",
    )
    assert status["message"] == (
        "spec.template.spec.serviceAccountName: deployctl-controller is the deployctl "
        "controller's own ServiceAccount; pods of a Rollout may not run as the controller "
        "(use an account of your own)"
    )
    assert own.replicas_by_revision() == {}
    web_rolls_out(healthy)


def test_a_promotion_gate_into_another_namespace_needs_its_consent(
    controller: ControllerProcess, cluster: Cluster, healthy: Cluster
) -> None:
    web_rolls_out(healthy)
    image = healthy.rollout("web")["spec"]["template"]["spec"]["containers"][0]["image"]
    body = canary("peek", "v1", requires={"rollout": f"{healthy.namespace}/web"})
    body["spec"]["template"]["spec"]["containers"][0]["image"] = image
    cluster.apply_rollout(body)
    held = status_when(
        cluster, "peek", lambda s: s.get("reason") == "AwaitingGate", what="peek held at its gate"
    )
    assert held["message"] == (
        f"promotion gate: Rollouts of namespace {cluster.namespace} may not name "
        f"{healthy.namespace}/web in requires.rollout; a DeliveryPolicy of namespace "
        f"{healthy.namespace} (or a cluster-wide one) that applies to it must list "
        f"{cluster.namespace} in spec.promotionGateReaders"
    )
    assert healthy.status("web")["stableRevision"] not in json.dumps(cluster.status("peek"))


def test_a_hanging_webhook_delays_only_its_own_namespace(
    controller: ControllerProcess,
    cluster: Cluster,
    healthy: Cluster,
    own: Cluster,
    hostile: HostileServers,
) -> None:
    def secret(name: str, url: str, namespaces: str | None) -> None:
        annotations = {"deployctl.io/notification-namespaces": namespaces} if namespaces else {}
        own.core.create_namespaced_secret(
            own.namespace,
            {
                "metadata": {"name": name, "annotations": annotations},
                "data": {"url": base64.b64encode(url.encode()).decode()},
            },
        )

    def notify_policy(where: Cluster, secret_name: str, *, timeout: str = "5s") -> None:
        target = {
            "name": secret_name,
            "urlFrom": {"secretKeyRef": {"name": secret_name, "key": "url"}},
            "timeout": timeout,
            "retries": 10,
        }
        where.custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            where.namespace,
            "deliverypolicies",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "DeliveryPolicy",
                "metadata": {"name": f"notify-{secret_name}"},
                "spec": {"notifications": [target]},
            },
        )

    secret(f"hang-{cluster.namespace}", f"{hostile.url}/hook/hang", cluster.namespace)
    secret(f"ok-{healthy.namespace}", f"{hostile.url}/hook/ok", healthy.namespace)
    secret(f"platform-{cluster.namespace}", f"{hostile.url}/hook/ok", None)  # bound to none
    notify_policy(cluster, f"hang-{cluster.namespace}", timeout="60s")
    notify_policy(healthy, f"ok-{healthy.namespace}")
    notify_policy(healthy, f"platform-{cluster.namespace}")  # another team's channel
    try:
        for index in range(3):  # several deliveries queue behind the hanging one
            first_deploy(cluster, canary(f"noisy-{index}", "v1"))
        web_rolls_out(healthy)
        wait_until(
            lambda: [
                h["event"]
                for h in hostile.hooks
                if h["rollout"] == {"namespace": healthy.namespace, "name": "web"}
            ],
            ok=lambda events: "promoted" in events,
            timeout=30,
            what="the other team's promotion notified while the hanging webhook hangs",
        )
        assert not [h for h in hostile.hooks if h["rollout"]["namespace"] == cluster.namespace]
        refusal = (
            f"secret {own.namespace}/platform-{cluster.namespace} key url may not be used by "
            f"DeliveryPolicies of namespace {healthy.namespace}"
        )
        wait_until(
            controller.log_text, ok=lambda log: refusal in log, timeout=30, what="the refusal"
        )
        # One "started" and one "promoted" went to the bound channel, none to the other.
        sent = [h for h in hostile.hooks if h["rollout"]["namespace"] == healthy.namespace]
        assert len(sent) == len({(h["event"], h["revision"]) for h in sent})
        assert f"{hostile.url}/hook" not in controller.log_text()  # webhook URLs are secrets
    finally:
        for where, name in (
            (cluster, f"hang-{cluster.namespace}"),
            (healthy, f"ok-{healthy.namespace}"),
            (healthy, f"platform-{cluster.namespace}"),
        ):
            where.custom.delete_namespaced_custom_object(
                GROUP, VERSION, where.namespace, "deliverypolicies", f"notify-{name}"
            )


def test_history_prints_markup_in_annotations_as_written(
    controller: ControllerProcess, control_plane: Any, cluster: Cluster
) -> None:
    hostile_reason = "[link=https://evil.example]fix[/link] [/x]"
    body = canary("marked", "v1")
    body["metadata"]["annotations"] = {"deployctl.io/reason": hostile_reason}
    first_deploy(cluster, body)
    done = subprocess.run(
        [sys.executable, "-m", "controller.cli", "history", "marked", "-n", cluster.namespace],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KUBECONFIG": str(control_plane.kubeconfig), "COLUMNS": "300"},
    )
    assert done.returncode == 0, done.stderr
    assert hostile_reason in done.stdout
