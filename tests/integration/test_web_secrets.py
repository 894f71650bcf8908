"""Secrets and hostile servers against the running controller, in one namespace at once.

- A header read from a Secret is sent, and its value appears nowhere a person or a log
  collector could read it: the Rollouts' status, the namespace's Events, the controller's
  JSON log, ``deployctl status`` (text and JSON) — also when the server echoes it back
  in a 401 body, and when the value cannot be sent at all (a character outside
  Latin-1: once an exception out of the provider, logged with the frame's locals).
- Four web checks against a server that accepts and never answers (more than the
  controller's workers, 2 here) and a URL with credentials in its userinfo and query
  cost each worker at most the check's deadline: a second, healthy Rollout in the same
  namespace completes meanwhile, and the controller is still running at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from kubernetes import client as k8s

from tests.integration.harness import SANDBOX_WEB, Cluster, settled
from tests.integration.web_helpers import deploy_v1_then_v2, measured, web_template
from tests.security.servers import echo_server, tarpit

SECRET = "s3cret-Tok3n-4b1d"
UNICODE_SECRET = "tøken-☃-uni-s3cret"
LITERAL = "literal-☃-key-9d2"
TARPITS = ("tarpit-a", "tarpit-b", "tarpit-c", "tarpit-d")


def test_secret_headers_stay_hidden_and_hostile_servers_do_not_stall_the_controller(
    cluster: Cluster, start_controller: Any, control_plane: Any
) -> None:
    core: Any = k8s.CoreV1Api(cluster.api)
    core.create_namespaced_secret(
        cluster.namespace,
        {
            "metadata": {"name": "probe"},
            "stringData": {"token": f"Bearer {SECRET}", "unicode": UNICODE_SECRET},
        },
    )
    # The controller reads that Secret with its own credentials (the sandbox's admin
    # kubeconfig here; in a cluster a Role grants exactly this Secret, docs/analysis.md).
    controller = start_controller(
        args=["--no-leader-elect", "--workers", "2", "--service-address", "pods", *SANDBOX_WEB]
    )

    def from_secret(key: str) -> dict[str, Any]:
        return {"secretKeyRef": {"name": "probe", "key": key}}

    with echo_server("127.0.0.2") as echo, tarpit("127.0.0.3") as silent:
        templates: dict[str, dict[str, Any]] = {
            # The server echoes the request's headers in its 401 body.
            "echoed": {
                "url": f"{echo.url}/status/401",
                "headers": [{"name": "Authorization", "valueFrom": from_secret("token")}],
            },
            "unicode": {
                "url": f"{echo.url}/",
                "headers": [{"name": "X-Token", "valueFrom": from_secret("unicode")}],
            },
            "literal": {
                "url": f"{echo.url}/",
                "headers": [{"name": "X-Api-Key", "value": LITERAL}],
            },
            "userinfo": {
                "url": f"http://probe:{SECRET}@{echo.host}:{echo.port}/status/500?key={SECRET}"
            },
        }
        for name, web in templates.items():
            cluster.create_template(web_template(name, web))
        # Never answers; each measurement may take up to its 3 s interval.
        cluster.create_template(
            web_template(
                "tarpit",
                {"url": f"{silent.url}/", "timeout": "60s"},
                interval="3s",
                count=3,
                inconclusiveLimit=3,
            )
        )
        checks: dict[str, str | None] = {name: name for name in templates}
        checks.update({name: "tarpit" for name in TARPITS})
        checks["healthy"] = None
        stable = deploy_v1_then_v2(cluster, checks)

        healthy = settled(cluster, "healthy", timeout=180)
        assert healthy["phase"] == "Healthy" and healthy["stableRevision"] != stable["healthy"]
        for name in TARPITS:
            result = measured(cluster, name, stable[name])
            assert "no reply within 3 s" in result["message"], result
        echoed = settled(cluster, "echoed", timeout=120)
        assert echoed["phase"] == "Degraded" and "-> 401" in echoed["message"], echoed
        assert "[REDACTED]" in echoed["message"]
        assert echo.seen.requests and any(
            r.get("Authorization") == f"Bearer {SECRET}" for r in echo.seen.requests
        )
        for name, text in (
            ("unicode", "header X-Token: the value from Secret"),
            ("literal", "header X-Api-Key: the value from the template"),
        ):
            status = settled(cluster, name, timeout=120)
            assert status["phase"] == "Degraded", status
            assert (
                f"{text}" in status["message"]
                and "cannot carry (only Latin-1)" in status["message"]
            )
        userinfo = settled(cluster, "userinfo", timeout=120)
        assert (
            f"http://probe:[REDACTED]@{echo.host}:{echo.port}/status/500?key=[REDACTED]"
            in (userinfo["message"])
        ), userinfo

    # Nowhere to be read: status, Events, the controller's log, the CLI.
    env = {**os.environ, "KUBECONFIG": str(control_plane.kubeconfig), "COLUMNS": "200"}
    seen = [json.dumps(cluster.status(name)) for name in checks]
    seen += [str(e.message) for e in cluster.events()]
    seen.append(controller.log_text())
    for name in ("echoed", "unicode", "literal", "userinfo"):
        for output in ("text", "json"):
            ran = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "controller.cli",
                    "status",
                    name,
                    "-n",
                    cluster.namespace,
                    "-o",
                    output,
                ],
                capture_output=True,
                text=True,
                timeout=60,
                env=env,
            )
            assert ran.returncode in (0, 1), ran.stderr  # 1: the rollout is Degraded
            seen.append(ran.stdout + ran.stderr)
    everything = "\n".join(seen)
    for secret in (SECRET, UNICODE_SECRET, LITERAL, "s3cret", "☃"):
        assert secret not in everything, f"{secret!r} leaked"
    # Escaped forms too (JSON logs and status use \\uXXXX for non-ASCII).
    assert "\\u2603" not in everything
    assert controller.process.poll() is None  # still running
    assert "reconcile crashed" not in controller.log_text()
