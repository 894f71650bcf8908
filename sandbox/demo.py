"""``make demo``: the whole story on the local sandbox, in about a minute and a half.

Starts a real control plane (etcd, kube-apiserver, kube-controller-manager built by
``sandbox.build``), the node agent running each pod as a demo-app process, a real
Prometheus scraping them every second, a traffic generator, and ``deployctl controller``
as a subprocess. Then:

1. ``v1`` of a canary Rollout is deployed (the first revision goes straight to 100%);
2. a broken ``v2`` (30% of requests answer 500) starts its canary; the analysis step
   measures the error rate and the controller rolls it back by itself;
3. a healthy ``v3`` walks through every step and is promoted.

The terminal shows each step, weight and measurement as the controller writes them into
the Rollout's status. Every process started here is stopped on the way out, also on
Ctrl-C and SIGTERM. Exit status 0 only when the story happened as told.

``--keep`` leaves the sandbox up afterwards (prints the ``KUBECONFIG`` line) until Enter.
``--dashboard`` (``make demo DASHBOARD=1``) also runs ``deployctl dashboard`` on the demo's
namespace and prints its address, so the story can be watched in a browser as it runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from kubernetes import client as k8s
from rich.console import Console
from rich.table import Table

from controller.names import REASON_ANNOTATION, REQUESTED_BY_ANNOTATION, REVISION_LABEL
from sandbox.build import BinariesMissing, find_binaries
from sandbox.controlplane import ControlPlane
from sandbox.node_agent import NodeAgent
from sandbox.prometheus import PrometheusServer
from sandbox.traffic import TrafficGenerator

GROUP, VERSION = "deployctl.io", "v1alpha1"
NAMESPACE = "demo"
APP = "shop"
REPLICAS = 4
REPO_ROOT = Path(__file__).resolve().parent.parent
CRD_DIR = REPO_ROOT / "manifests" / "crds"
# Where the demo's controller keeps its leader Lease when the dashboard runs.
DASHBOARD_LEASE_NAMESPACE = "default"

STEPS: list[dict[str, Any]] = [
    {"setWeight": 25},
    {"pause": {"duration": "3s"}},
    {"analysis": {"templates": [{"name": "error-rate"}]}},
    {"setWeight": 50},
    {"pause": {"duration": "3s"}},
]

TEMPLATE: dict[str, Any] = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "AnalysisTemplate",
    "metadata": {"name": "error-rate"},
    "spec": {
        "metrics": [
            {
                "name": "error-rate",
                # The canary's 5xx ratio over 20 s, from the conventional
                # http_requests_total the demo app exports: the errorRate preset.
                "errorRate": {"max": 0.05, "window": "20s"},
                "interval": "2s",
                "count": 3,
                "failureLimit": 0,
                "inconclusiveLimit": 20,
                "for": "0s",
            }
        ]
    },
}

console = Console(highlight=False)


class DemoFailed(RuntimeError):
    """The story did not happen as told; the message says where it diverged."""


# What the `restricted` Pod Security level asks of a pod (docs/release-workflow.md).
RESTRICTED_POD: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESTRICTED_CONTAINER: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}


def rollout_body(version: str, *, error_rate: float = 0.0) -> dict[str, Any]:
    env = [{"name": "DEMO_VERSION", "value": version}]
    if error_rate:
        env.append({"name": "DEMO_ERROR_RATE", "value": str(error_rate)})
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Rollout",
        "metadata": {
            "name": APP,
            "annotations": {
                REQUESTED_BY_ANNOTATION: "make demo",
                REASON_ANNOTATION: f"demo: roll out {version}",
            },
        },
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": {"app": APP}},
            "template": {
                "metadata": {"labels": {"app": APP}},
                "spec": {
                    "securityContext": RESTRICTED_POD,
                    "containers": [
                        {
                            "name": "app",
                            "image": f"deployctl/demo-app:{version}",
                            "env": env,
                            "securityContext": RESTRICTED_CONTAINER,
                        }
                    ],
                },
            },
            "strategy": {
                "canary": {
                    "stableService": f"{APP}-stable",
                    "canaryService": f"{APP}-canary",
                    "steps": STEPS,
                }
            },
            "progressDeadlineSeconds": 120,
        },
    }


@dataclass
class Chapter:
    """One version's part of the story, for the summary."""

    version: str
    expected: str
    revision: str = ""
    outcome: str = ""
    seconds: float = 0.0
    requests: int = 0
    failed: int = 0
    reason: str = ""


@dataclass
class Stack:
    """Everything started for the demo; ``ExitStack`` stops it in reverse order."""

    plane: ControlPlane
    api: k8s.ApiClient
    prometheus: PrometheusServer
    controller: subprocess.Popen[bytes]
    controller_log: Path
    custom: Any = field(init=False)
    core: Any = field(init=False)
    apps: Any = field(init=False)

    def __post_init__(self) -> None:
        self.custom = k8s.CustomObjectsApi(self.api)
        self.core = k8s.CoreV1Api(self.api)
        self.apps = k8s.AppsV1Api(self.api)

    def status(self) -> dict[str, Any]:
        body = self.custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "rollouts", APP)
        return dict(body.get("status") or {})

    def generation(self) -> int:
        body = self.custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "rollouts", APP)
        return int(body["metadata"]["generation"])

    def apply(self, body: Mapping[str, Any]) -> None:
        """Create, or replace the spec (re-reading on 409: the controller writes status)."""
        for _attempt in range(10):
            try:
                current = self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, NAMESPACE, "rollouts", APP
                )
            except k8s.ApiException as exc:
                if exc.status != 404:
                    raise
                self.custom.create_namespaced_custom_object(
                    GROUP, VERSION, NAMESPACE, "rollouts", dict(body)
                )
                return
            merged = dict(body)
            merged["metadata"] = {
                **current["metadata"],
                "annotations": {
                    **(current["metadata"].get("annotations") or {}),
                    **body["metadata"]["annotations"],
                },
            }
            try:
                self.custom.replace_namespaced_custom_object(
                    GROUP, VERSION, NAMESPACE, "rollouts", APP, merged
                )
                return
            except k8s.ApiException as exc:
                if exc.status != 409:
                    raise
        raise DemoFailed("the Rollout kept conflicting on update")

    def replicas_by_revision(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for rs in self.apps.list_namespaced_replica_set(NAMESPACE).items:
            revision = (rs.metadata.labels or {}).get(REVISION_LABEL)
            if revision:
                out[revision] = rs.spec.replicas or 0
        return out

    def controller_alive(self) -> None:
        if self.controller.poll() is not None:
            tail = self.controller_log.read_text(errors="replace")[-2000:]
            raise DemoFailed(f"the controller exited ({self.controller.returncode}):\n{tail}")


def say(text: str) -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {text}")


@contextmanager
def timed(what: str) -> Iterator[None]:
    started = time.monotonic()
    with console.status(what + " ..."):
        yield
    say(f"{what} [dim]({time.monotonic() - started:.1f} s)[/dim]")


def wait_for(
    check: Callable[[], Any], *, timeout: float, what: str, stack: Stack | None = None
) -> Any:
    """Poll ``check`` until it returns something truthy, with a deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stack is not None:
            stack.controller_alive()
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise DemoFailed(f"timed out after {timeout:.0f} s waiting for {what}")


def start_stack(exits: ExitStack, workdir: Path, *, lease_namespace: str | None = None) -> Stack:
    try:
        binaries = find_binaries()
    except BinariesMissing as exc:
        raise DemoFailed(
            f"{exc}\nRun `make cluster` (or `make demo`, which runs it) first."
        ) from None
    with timed(f"control plane {binaries.version}: etcd, kube-apiserver, kube-controller-manager"):
        plane = ControlPlane(workdir / "cluster", binaries=binaries, watch_cache=True)
        plane.start()
        exits.callback(plane.stop)
        plane.install_crds(sorted(CRD_DIR.glob("*.yaml")))
    api = plane.api_client()
    exits.callback(api.close)
    file_sd = workdir / "file_sd"
    file_sd.mkdir()
    with timed("Prometheus (scraping every second)"):
        prometheus = PrometheusServer(workdir / "prometheus", file_sd_dir=file_sd)
        prometheus.start()
        exits.callback(prometheus.stop)
    with timed("node agent (each pod is a real demo-app process on a loopback IP)"):
        # A deleted pod keeps serving for a second while Terminating, as a kubelet stops a
        # container gracefully (SIGTERM, then the grace period): the traffic generator's
        # view of the Ready pods lags up to 0.5 s, as kube-proxy's does, and a process
        # killed at once would fail requests a real cluster would not.
        agent = NodeAgent(
            api,
            run_processes=True,
            file_sd_dir=file_sd,
            log_dir=workdir / "pods",
            termination_delay=1.0,
        )
        agent.start()
        exits.callback(agent.stop)
        if not agent.wait_synced(30):
            raise DemoFailed("the node agent did not list pods within 30 s")
    log_path = workdir / "controller.log"
    log = log_path.open("ab")
    exits.callback(log.close)
    command = [
        sys.executable,
        "-m",
        "controller.cli",
        "controller",
        "--kubeconfig",
        str(plane.kubeconfig),
        "--prometheus-url",
        prometheus.url,
        "--probe-address",
        "127.0.0.1:0",
        "--log-format",
        "json",
    ]
    # With a Lease the dashboard (like the CLI) sees that a controller runs and offers
    # its actions; without one it says that nothing would act.
    command += ["--lease-namespace", lease_namespace] if lease_namespace else ["--no-leader-elect"]
    controller = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
    exits.callback(_stop_process, controller)
    say(f"deployctl controller started (pid {controller.pid}, log {log_path})")
    return Stack(
        plane=plane, api=api, prometheus=prometheus, controller=controller, controller_log=log_path
    )


def start_dashboard(exits: ExitStack, stack: Stack, workdir: Path, address: str) -> str:
    """``deployctl dashboard`` on the demo's namespace; returns the Rollout's page address."""
    log_path = workdir / "dashboard.log"
    log = log_path.open("ab")
    exits.callback(log.close)
    command = [
        sys.executable,
        "-m",
        "controller.cli",
        "dashboard",
        "--kubeconfig",
        str(stack.plane.kubeconfig),
        "--namespace",
        NAMESPACE,
        "--address",
        address,
    ]
    env = {**os.environ, "DEPLOYCTL_CONTROLLER_NAMESPACE": DASHBOARD_LEASE_NAMESPACE}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, cwd=REPO_ROOT, env=env)
    exits.callback(_stop_process, process)
    assert process.stdout is not None
    # The dashboard prints its address on stdout once it serves (after its first sync).
    url = process.stdout.readline().decode().strip()
    if not url.startswith("http"):
        tail = log_path.read_text(errors="replace")[-2000:]
        raise DemoFailed(f"the dashboard did not start:\n{tail}")
    return f"{url}/rollouts/{NAMESPACE}/{APP}"


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def prepare_namespace(stack: Stack) -> None:
    # Where Pod Security admission exists (1.25+), the demo runs under its strictest
    # level: the demo app's pods comply (RESTRICTED_POD); 1.20 ignores the label.
    labels = {"pod-security.kubernetes.io/enforce": "restricted"}
    stack.core.create_namespace({"metadata": {"name": NAMESPACE, "labels": labels}})
    for name in (APP, f"{APP}-stable", f"{APP}-canary"):
        stack.core.create_namespaced_service(
            NAMESPACE,
            {
                # The annotation is the Service's consent to being steered by the Rollout.
                "metadata": {"name": name, "annotations": {"deployctl.io/rollout": APP}},
                "spec": {"selector": {"app": APP}, "ports": [{"port": 8080}]},
            },
        )
    stack.custom.create_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, "analysistemplates", TEMPLATE
    )


class Narrator:
    """Prints what changed in the Rollout's status since the last look."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, ...]] = set()

    def _once(self, key: tuple[str, ...], text: str) -> None:
        if key not in self._seen:
            self._seen.add(key)
            say(text)

    def tell(self, status: Mapping[str, Any]) -> None:
        phase = status.get("phase") or "-"
        step = status.get("currentStepIndex")
        weight = status.get("weight", 0)
        canary = status.get("canaryRevision") or ""
        if step is not None and canary:
            described = describe_step(step)
            self._once(
                ("step", canary, str(step)),
                f"  step {step + 1 if step < len(STEPS) else len(STEPS)}/{len(STEPS)} "
                f"{described}  weight [bold]{weight}%[/bold]  phase {phase}",
            )
        for run in status.get("analysisRuns") or []:
            for metric in run.get("metrics") or []:
                for m in metric.get("measurements") or []:
                    value = m.get("value")
                    shown = f"{float(value):.1%}" if _is_number(value) else str(value)
                    colour = {"Successful": "green", "Failed": "red"}.get(m["phase"], "yellow")
                    # Times are whole seconds and measurements 0.5 s apart can share
                    # one: the phase and value are in the key, so a Failed one after a
                    # Successful one in the same second is still told.
                    self._once(
                        ("m", run["revision"], run["key"], metric["name"], m["at"])
                        + (m["phase"], str(value)),
                        f"    measured {metric['name']} of {run['revision']}: {shown} "
                        f"-> [{colour}]{m['phase']}[/{colour}]",
                    )
        if phase in ("Degraded", "Paused") and status.get("reason"):
            self._once(
                ("phase", canary, phase, status["reason"]),
                f"  phase [bold]{phase}[/bold], reason [bold]{status['reason']}[/bold]: "
                f"{status.get('message', '')}",
            )


def describe_step(index: int) -> str:
    if index >= len(STEPS):
        return "(all steps done)"
    step = STEPS[index]
    if "setWeight" in step:
        return f"setWeight {step['setWeight']}"
    if "pause" in step:
        return f"pause {step['pause'].get('duration', 'until promoted')}"
    return "analysis " + ", ".join(t["name"] for t in step["analysis"]["templates"])


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def follow(
    stack: Stack, *, until: Callable[[dict[str, Any]], bool], timeout: float, what: str
) -> dict[str, Any]:
    narrator = Narrator()
    generation = stack.generation()

    def check() -> dict[str, Any] | None:
        status = stack.status()
        if status.get("observedGeneration") != generation:
            return None
        narrator.tell(status)
        return status if until(status) else None

    result: dict[str, Any] = wait_for(check, timeout=timeout, what=what, stack=stack)
    return result


def first_deploy(stack: Stack) -> str:
    say("[bold]v1[/bold]: first deploy of a canary Rollout (no stable yet: straight to 100%)")
    stack.apply(rollout_body("v1"))
    status = follow(
        stack,
        until=lambda s: s.get("phase") == "Healthy" and bool(s.get("stableRevision")),
        timeout=60,
        what="v1 Healthy",
    )
    revision = str(status["stableRevision"])
    wait_for(
        lambda: stack.replicas_by_revision().get(revision) == REPLICAS,
        timeout=30,
        what="v1 at full scale",
        stack=stack,
    )
    say(f"  v1 is revision {revision}: {REPLICAS} pods Ready, serving all traffic")
    return revision


def broken_canary(stack: Stack, traffic: TrafficGenerator, stable: str) -> Chapter:
    chapter = Chapter(version="v2", expected="rolled back")
    say("[bold]v2[/bold]: a broken version, [red]30% of its requests answer 500[/red]")
    traffic.reset()
    started = time.monotonic()
    stack.apply(rollout_body("v2", error_rate=0.3))
    status = follow(
        stack,
        until=lambda s: s.get("phase") == "Degraded",
        timeout=90,
        what="the broken v2 to be rolled back",
    )
    canary = str(status.get("canaryRevision") or "")
    wait_for(
        lambda: stack.replicas_by_revision().get(canary, 0) == 0,
        timeout=30,
        what="the v2 canary scaled to 0",
        stack=stack,
    )
    chapter.seconds = time.monotonic() - started
    if status.get("stableRevision") != stable:
        raise DemoFailed(f"stable changed to {status.get('stableRevision')} during the rollback")
    stats = traffic.stats()
    chapter.revision = canary
    chapter.outcome = f"rolled back ({status.get('reason')})"
    chapter.reason = str(status.get("message", ""))
    chapter.requests = stats.total
    chapter.failed = round(stats.error_ratio() * stats.total)
    say(
        f"  rolled back in {chapter.seconds:.1f} s: canary at 0 replicas, all traffic on "
        f"{stable}; users saw {chapter.failed} failed of {chapter.requests} requests"
    )
    return chapter


def healthy_release(stack: Stack, traffic: TrafficGenerator) -> Chapter:
    chapter = Chapter(version="v3", expected="promoted")
    say("[bold]v3[/bold]: a healthy version")
    traffic.reset()
    started = time.monotonic()
    stack.apply(rollout_body("v3"))
    status = follow(
        stack,
        until=lambda s: s.get("phase") == "Healthy" and s.get("weight") in (0, 100),
        timeout=90,
        what="v3 to be promoted",
    )
    revision = str(status["stableRevision"])
    chapter.seconds = time.monotonic() - started
    stats = traffic.stats()
    chapter.revision = revision
    chapter.outcome = "promoted"
    chapter.requests = stats.total
    chapter.failed = round(stats.error_ratio() * stats.total)
    say(f"  promoted in {chapter.seconds:.1f} s: {revision} is the stable revision")
    return chapter


def summary(chapters: list[Chapter], total_seconds: float) -> None:
    table = Table(title="deployctl demo")
    for column in ("version", "revision", "expected", "outcome", "seconds", "requests", "5xx"):
        table.add_column(column)
    for c in chapters:
        ok = c.outcome.startswith(c.expected)
        table.add_row(
            c.version,
            c.revision,
            c.expected,
            f"[{'green' if ok else 'red'}]{c.outcome}[/]",
            f"{c.seconds:.1f}",
            str(c.requests),
            str(c.failed),
        )
    console.print(table)
    for c in chapters:
        if c.reason:
            console.print(f"why {c.version} was rolled back: {c.reason}")
    console.print(f"whole demo: {total_seconds:.0f} s")


def _raise_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    # SystemExit unwinds through the ExitStack, so every process gets stopped.
    raise SystemExit(128 + signum)


def run(*, keep: bool, rate: float, workdir: Path, dashboard: str | None = None) -> int:
    started = time.monotonic()
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    with ExitStack() as exits:
        lease = DASHBOARD_LEASE_NAMESPACE if dashboard is not None else None
        stack = start_stack(exits, workdir, lease_namespace=lease)
        prepare_namespace(stack)
        if stack.plane.minor >= (1, 25):
            say(f"namespace {NAMESPACE} enforces the restricted Pod Security level")
        stable = first_deploy(stack)
        if dashboard is not None:
            page = start_dashboard(exits, stack, workdir, dashboard)
            say(f"[bold]dashboard:[/bold] {page}  (open it in a browser; it updates live)")
        traffic = TrafficGenerator(
            stack.api, namespace=NAMESPACE, service=APP, rate_per_second=rate
        ).start()
        exits.callback(traffic.stop)
        say(f"traffic: {rate:.0f} requests/s to Service {APP}, split over its Ready pods")
        chapters = [broken_canary(stack, traffic, stable), healthy_release(stack, traffic)]
        summary(chapters, time.monotonic() - started)
        if keep:
            console.print(
                f"\nThe sandbox is still running. In another terminal:\n"
                f"  export KUBECONFIG={stack.plane.kubeconfig}\n"
                f"  .venv/bin/deployctl validate -f examples/canary.yaml\n"
                f"Prometheus: {stack.prometheus.url}   controller log: {stack.controller_log}\n"
                f"Press Enter to stop everything."
            )
            sys.stdin.readline()
        say("stopping every process the demo started")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.demo", description=__doc__)
    parser.add_argument("--keep", action="store_true", help="leave the sandbox up until Enter")
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second")
    parser.add_argument(
        "--dashboard",
        nargs="?",
        const="127.0.0.1:3100",
        default=None,
        metavar="HOST:PORT",
        help="also serve `deployctl dashboard` (default 127.0.0.1:3100) and print its address",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    workdir = Path(tempfile.mkdtemp(prefix="deployctl-demo-"))
    try:
        code = run(keep=args.keep, rate=args.rate, workdir=workdir, dashboard=args.dashboard)
    except DemoFailed as exc:
        # Keep the logs (controller, apiserver, pods) of a failed run to look at.
        console.print(f"[red]demo failed:[/red] {exc}\nlogs kept in {workdir}")
        return 1
    except KeyboardInterrupt:
        console.print("interrupted; everything the demo started has been stopped")
        shutil.rmtree(workdir, ignore_errors=True)
        return 130
    shutil.rmtree(workdir, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
