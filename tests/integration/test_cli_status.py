"""``deployctl status`` and ``deployctl version`` as a user sees them, against the sandbox
with the operator running: why an analysis waits (no data since when, how many
measurements, how much traffic), output without a terminal (no colour, no wrapping),
and the controller's version read from its leader Lease."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.integration.harness import Cluster, demo_rollout, error_rate_template
from tests.waiting import wait_until

LEASE = "deployctl-status"


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # stdout and stderr are pipes: exactly what CI logs and `| tee` give the command.
    return subprocess.run(
        [sys.executable, "-m", "controller.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_status_explains_missing_data_without_a_terminal_and_version_asks_the_leader(
    cluster: Cluster, start_controller: Any, control_plane: Any, tmp_path: Path
) -> None:
    ns = cluster.namespace
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if k not in ("COLUMNS", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE")
        },
        "KUBECONFIG": str(control_plane.kubeconfig),
        "DEPLOYCTL_CONTROLLER_NAMESPACE": ns,
        "DEPLOYCTL_CONTROLLER_LEASE": LEASE,
    }
    start_controller(["--lease-namespace", ns, "--lease-name", LEASE, "--retry-period", "0.5"])
    template = error_rate_template("errors", interval="1s", count=None)
    template["spec"]["metrics"][0]["inconclusiveLimit"] = 1000
    cluster.create_template(template)
    strategy = {
        "canary": {"steps": [{"setWeight": 50}, {"analysis": {"templates": [{"name": "errors"}]}}]}
    }
    cluster.apply_rollout(demo_rollout("shop", version="1.0.0", replicas=2, strategy=strategy))
    wait_until(
        lambda: cluster.status("shop"),
        ok=lambda s: s.get("phase") == "Healthy",
        timeout=60,
        what="the first revision to be healthy",
    )
    # No traffic at all: the canary's error ratio has no data, measurement after measurement.
    cluster.apply_rollout(demo_rollout("shop", version="1.1.0", replicas=2, strategy=strategy))
    status = wait_until(
        lambda: cluster.status("shop"),
        ok=lambda s: any(
            m.get("inconclusive", 0) >= 3
            for run in s.get("analysisRuns") or []
            for m in run.get("metrics") or []
        ),
        timeout=90,
        what="three measurements without data",
    )
    canary = status["canaryRevision"]

    result = cli("status", "shop", "-n", ns, env=env)
    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stdout, "colour codes on a pipe"
    waiting_lines = [line for line in result.stdout.splitlines() if line.startswith("waiting:")]
    assert len(waiting_lines) == 1, result.stdout
    [waiting] = waiting_lines
    assert "error-rate (step-1): no data for " in waiting
    assert "measurements in a row" in waiting and "(since 20" in waiting
    # Why: the canary had no traffic (counted, or not even a series yet).
    assert f"revision {canary} served 0 requests in the last 20s" in waiting or (
        f"no requests recorded for revision {canary}" in waiting
    )
    # One line however long: no wrapping at 80 columns without a terminal.
    assert len(waiting) > 120

    document = json.loads(cli("status", "shop", "-n", ns, "-o", "json", env=env).stdout)
    [gap] = [m["noData"] for m in document["measurements"] if m["noData"]]
    assert gap["measurements"] >= 3 and gap["seconds"] >= 2 and gap["since"].endswith("Z")

    version = cli("version", "-o", "json", env=env)
    assert version.returncode == 0, version.stderr
    published = json.loads(version.stdout)
    assert published["controller"]["version"] == published["client"]["version"]
    assert published["controller"]["lease"] == f"{ns}/{LEASE}"
    text = cli("version", env=env).stdout
    assert f"controller: {published['client']['version']} (leader " in text


def test_an_insecure_kubeconfig_is_said_once_in_one_line(
    cluster: Cluster, control_plane: Any, tmp_path: Path
) -> None:
    config = yaml.safe_load(Path(control_plane.kubeconfig).read_text())
    for entry in config["clusters"]:
        entry["cluster"].pop("certificate-authority", None)
        entry["cluster"]["insecure-skip-tls-verify"] = True
    insecure = tmp_path / "insecure-kubeconfig"
    insecure.write_text(yaml.safe_dump(config))
    env = {**os.environ, "KUBECONFIG": str(insecure), "DEPLOYCTL_CONTROLLER_NAMESPACE": "none"}
    # `list` sends two requests (Rollouts, the Lease is not asked); urllib3 would warn on each.
    result = cli("list", "-n", cluster.namespace, env=env)
    assert result.returncode == 0, result.stderr
    assert "InsecureRequestWarning" not in result.stderr
    assert result.stderr.splitlines()[0] == (
        "warning: not verifying the API server's certificate (insecure-skip-tls-verify in "
        "context 'sandbox')"
    )
    assert sum("certificate" in line for line in result.stderr.splitlines()) == 1


def test_status_costs_the_apiserver_two_or_three_requests(
    cluster: Cluster, control_plane: Any, monkeypatch: Any
) -> None:
    from typer.testing import CliRunner

    from controller.cli import app
    from controller.commands import view
    from controller.commands.common import Session, connect

    cluster.apply_rollout(
        demo_rollout("shop", version="1.0.0", replicas=1, strategy={"canary": {}})
    )
    sessions: list[Session] = []
    real = connect

    def spy(*args: Any) -> Session:
        session = real(*args)
        sessions.append(session)
        return session

    monkeypatch.setattr(view, "connect", spy)
    kubeconfig = str(control_plane.kubeconfig)
    for output, lease in (("json", []), ("text", [("get", "leases")])):
        sessions.clear()
        result = CliRunner().invoke(
            app,
            ["status", "shop", "-n", cluster.namespace, "-o", output, "--kubeconfig", kubeconfig],
        )
        assert result.exit_code == 0, result.output
        [session] = sessions
        # The Rollout and its ReplicaSets (text: and the controller's Lease); no retries.
        assert sorted(
            (verb, resource) for verb, resource, _ in session.requests.elements()
        ) == sorted([("get", "rollouts"), ("list", "replicasets"), *lease])
