"""``deployctl`` as a subprocess against the sandbox with the operator running.

Each command's effect on the cluster and each exit code CI relies on: 0 promoted, 1
rolled back, 2 usage/validation (downgrade refused, unknown container, unknown rollout),
3 timed out waiting, 4 no controller / unreachable / forbidden.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.integration.harness import CiCli, Cluster, demo_rollout, deployctl, error_rate_template
from tests.waiting import wait_until

LEASE = "deployctl-ctl"
STEPS = [{"setWeight": 25}, {"analysis": {"templates": [{"name": "errors"}]}}]


def rollout_file(tmp_path: Path, version: str, env: dict[str, str] | None = None) -> Path:
    body = demo_rollout(
        "shop",
        version=version,
        env=env,
        replicas=2,
        strategy={
            "canary": {
                "stableService": "shop-stable",
                "canaryService": "shop-canary",
                "steps": STEPS,
            }
        },
    )
    container = body["spec"]["template"]["spec"]["containers"][0]
    container["image"] = f"deployctl/demo-app:{version}"
    path = tmp_path / f"shop-{version}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def test_cli_drives_the_operator_with_ci_exit_codes(
    cluster: Cluster,
    ci_cli: Callable[..., CiCli],
    control_plane: Any,
    traffic: Any,
    tmp_path: Path,
) -> None:
    ns = cluster.namespace
    cli = ci_cli(LEASE, DEPLOYCTL_USER="ci-bot", GITHUB_SHA="0123abc")
    for service in ("shop", "shop-stable", "shop-canary"):
        cluster.create_service(service, {"app": "shop"}, rollout="shop")
    cluster.create_template(error_rate_template("errors", interval="1s", count=2))
    first = rollout_file(tmp_path, "1.0.0")

    # 4: nothing would act on the request without a controller.
    result = cli("rollout", "-f", str(first), "-n", ns)
    assert result.returncode == 4, result.stderr
    assert "no deployctl controller is running" in result.stderr
    assert "kubectl apply -k manifests/" in result.stderr

    cli.start_controller()
    cli.wait_for_controller()

    # 0: a first deploy from a file, followed to the end, one JSON document on stdout.
    result = cli(
        "rollout",
        "-f",
        str(first),
        "-n",
        ns,
        "--wait",
        "--timeout",
        "90s",
        "-o",
        "json",
        "--reason",
        "first release",
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["outcome"] == "Promoted" and outcome["exitCode"] == 0
    v1 = outcome["revision"]
    assert outcome["stableRevision"] == v1
    traffic(ns, service="shop", rate_per_second=30)

    # 2: refused before anything is written, with a message a person can act on.
    result = cli("rollout", "shop", "-n", ns, "--image", "app=deployctl/demo-app:0.9.0")
    assert result.returncode == 2
    assert "refusing to downgrade" in result.stderr and "1.0.0 -> 0.9.0" in result.stderr
    result = cli("rollout", "shop", "-n", ns, "--image", "web=x:1.0.1")
    assert result.returncode == 2 and "no container named 'web'" in result.stderr
    assert "containers: app" in result.stderr
    result = cli("status", "shpo", "-n", ns)
    assert result.returncode == 2 and "did you mean: shop" in result.stderr
    assert "Traceback" not in result.stderr
    assert cluster.status("shop")["stableRevision"] == v1  # nothing touched

    # 3: an indefinite pause never finishes by itself.
    result = cli(
        "rollout",
        "shop",
        "-n",
        ns,
        "--image",
        "app=deployctl/demo-app:1.1.0",
        "--steps",
        "50,pause",
        "--reason",
        "checkout v1.1",
        "--wait",
        "--timeout",
        "5s",
    )
    assert result.returncode == 3, result.stderr
    assert "TimedOut" in result.stderr or "still Paused" in result.stderr
    status = cluster.status("shop")
    assert status["phase"] == "Paused" and status["weight"] == 50
    v2 = status["canaryRevision"]

    # status shows the pause; pause/resume toggle spec.paused through the controller.
    result = cli("status", "shop", "-n", ns, "-o", "json")
    assert result.returncode == 0
    doc = json.loads(result.stdout)
    assert doc["phase"] == "Paused" and doc["canary"] == v2 and doc["weight"] == "50%"
    assert doc["replicas"][v1]["desired"] == 1  # by replica share: one pod each at 50%
    assert cli("pause", "shop", "-n", ns).returncode == 0
    assert cluster.rollout("shop")["spec"]["paused"] is True
    assert cli("resume", "shop", "-n", ns).returncode == 0
    assert cluster.rollout("shop")["spec"]["paused"] is False

    # promote: acknowledged by the controller, which then finishes the rollout.
    result = cli("promote", "shop", "-n", ns)
    assert result.returncode == 0, result.stderr
    wait_until(
        lambda: cluster.status("shop"),
        ok=lambda s: s.get("phase") == "Healthy" and s.get("stableRevision") == v2,
        timeout=60,
        what="v2 promoted",
    )

    # 1: a version answering half its requests with 500 is rolled back; evidence in JSON.
    broken = rollout_file(tmp_path, "1.2.0", {"DEMO_ERROR_RATE": "0.5"})
    result = cli("rollout", "-f", str(broken), "-n", ns, "--wait", "--timeout", "90s", "-o", "json")
    assert result.returncode == 1, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["outcome"] == "RolledBack" and outcome["reason"] == "AnalysisFailed"
    assert outcome["stableRevision"] == v2
    assert any(m["phase"] == "Failed" for m in outcome["measurements"])

    # abort / retry on a paused canary.
    result = cli(
        "rollout",
        "shop",
        "-n",
        ns,
        "--image",
        "app=deployctl/demo-app:1.3.0",
        "--steps",
        "25,pause",
    )
    assert result.returncode == 0, result.stderr
    wait_until(
        lambda: cluster.status("shop"),
        # 25% of 2 pods by replica share is one pod each: 50% as users get it.
        ok=lambda s: s.get("phase") == "Paused" and s.get("weight") == 50,
        timeout=30,
        what="v4 paused at its 25% step",
    )
    assert cli("abort", "shop", "-n", ns).returncode == 0
    status = cluster.status("shop")
    assert status["phase"] == "Degraded" and status["stableRevision"] == v2
    assert cli("retry", "shop", "-n", ns).returncode == 0
    wait_until(
        lambda: cluster.status("shop"),
        ok=lambda s: s.get("phase") == "Paused" and not s.get("aborted"),
        timeout=30,
        what="v4 retried",
    )
    assert cli("promote", "shop", "--full", "-n", ns).returncode == 0
    v4 = wait_until(
        lambda: cluster.status("shop"),
        ok=lambda s: (
            s.get("phase") == "Healthy"
            and s.get("stableRevision") not in (v2, None)
            and not s.get("canaryRevision")
        ),
        timeout=60,
        what="v4 promoted fully",
    )["stableRevision"]

    # history: versions, who, why, CI context, outcomes, oldest first.
    result = cli("history", "shop", "-n", ns, "-o", "json")
    assert result.returncode == 0
    rows = json.loads(result.stdout)["history"]
    assert [r["version"] for r in rows[:3]] == ["1.0.0", "1.1.0", "1.2.0"]
    # The requester is the name the API server knows the CLI's user by (SelfSubjectReview,
    # 1.28+: the sandbox's admin); an older one has no such API, and DEPLOYCTL_USER counts.
    requester = "admin" if control_plane.minor >= (1, 28) else "ci-bot"
    assert rows[1]["requestedBy"].startswith(requester), rows[1]
    assert rows[1]["reason"] == "checkout v1.1"
    assert rows[1]["ci"]["commit"] == "0123abc"
    assert [r["outcome"] for r in rows[1:3]] == ["Promoted", "RolledBack"]
    result = cli("history", "shop", "-n", ns)
    assert "1.2.0" in result.stdout and "RolledBack" in result.stdout

    # undo: back to the previous promoted revision (v2), the same revision hash again.
    result = cli("undo", "shop", "-n", ns, "--wait", "--timeout", "60s")
    assert result.returncode == 0, result.stderr
    assert cluster.status("shop")["stableRevision"] == v2 != v4

    result = cli("list", "-A", "-o", "json")
    listed = [r for r in json.loads(result.stdout) if r["namespace"] == ns]
    assert [(r["name"], r["phase"], r["stable"]) for r in listed] == [("shop", "Healthy", v2)]

    # status --watch keeps redrawing until Ctrl-C, which ends it cleanly (exit 0). As on
    # a terminal (TTY_COMPATIBLE), so that frames are drawn as they come: Ctrl-C is sent
    # once two frames are seen (the watch loop is running), not after a guessed delay.
    watch = subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "status", "shop", "-n", ns, "--watch"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**cli.env, "TTY_COMPATIBLE": "1"},
    )
    stdout = watch.stdout
    assert stdout is not None
    chunks: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for chunk in iter(lambda: stdout.read(64), ""):
            chunks.put(chunk)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    seen = ""
    deadline = time.monotonic() + 30
    while seen.count("Rollout") < 2:  # the first line of each frame
        assert watch.poll() is None, f"status --watch ended by itself: {seen[-500:]}"
        assert time.monotonic() < deadline, f"no second frame in 30 s: {seen[-500:]}"
        try:
            seen += chunks.get(timeout=0.5)
        except queue.Empty:
            continue
    watch.send_signal(signal.SIGINT)
    code = watch.wait(timeout=15)
    errors = watch.stderr.read() if watch.stderr else ""
    if watch.stderr:
        watch.stderr.close()
    assert code == 0, errors
    reader.join(timeout=5)
    stdout.close()
    while not chunks.empty():
        seen += chunks.get()
    assert "Healthy" in seen and v2 in seen

    # The downgrade refused at the start is written when asked for on purpose.
    result = cli(
        "rollout",
        "shop",
        "-n",
        ns,
        "--image",
        "app=deployctl/demo-app:0.9.0",
        "--allow-downgrade",
        "--reason",
        "back to the last good release",
    )
    assert result.returncode == 0, result.stderr
    written = cluster.rollout("shop")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert written == "deployctl/demo-app:0.9.0"


def test_cli_exit_4_when_the_cluster_is_unreachable_or_forbidden(
    control_plane: Any, namespace: str, tmp_path: Path
) -> None:
    config = yaml.safe_load(Path(control_plane.kubeconfig).read_text())
    for cluster_entry in config["clusters"]:
        cluster_entry["cluster"]["server"] = "https://127.0.0.1:1"
    dead = tmp_path / "dead-kubeconfig"
    dead.write_text(yaml.safe_dump(config))
    env = {**os.environ, "COLUMNS": "200"}
    result = deployctl("status", "shop", "-n", namespace, "--kubeconfig", str(dead), env=env)
    assert result.returncode == 4
    assert "cannot reach the cluster" in result.stderr and "Traceback" not in result.stderr

    # "bob" exists but no Role grants him anything: RBAC says no, and we say which verb.
    bob = control_plane.user_kubeconfig("bob", tmp_path / "bob-kubeconfig")
    result = deployctl("list", "-n", namespace, "--kubeconfig", str(bob), env=env)
    assert result.returncode == 4
    assert "forbidden" in result.stderr and "list rollouts" in result.stderr

    result = deployctl(
        "status", "shop", "-n", namespace, "--kubeconfig", str(tmp_path / "none"), env=env
    )
    assert result.returncode == 4 and "cannot load the kubeconfig" in result.stderr
