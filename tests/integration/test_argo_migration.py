"""An Argo Rollouts AnalysisTemplate, converted by ``deployctl convert`` and applied, runs
on the sandbox with the operator: its Job check gets ``{{args.*}}`` filled from a real
Secret (``secretKeyRef``), from the Rollout (``fieldRef``), from the revision being
checked (``podTemplateHashValue``) and as its ``count``; the Secret's value never
reaches the Rollout's status, even when the check prints it and fails."""

from __future__ import annotations

from typing import Any

import yaml
from kubernetes import client as k8s

from controller.argo.convert import convert_text
from tests.integration.harness import Cluster, settled
from tests.integration.release_helpers import canary, jobs_of

SECRET_VALUE = "s3cr3t-t0ken"
ARGO_TEMPLATES = """
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: release-check
spec:
  args:
  - name: token
    valueFrom:
      secretKeyRef: {name: check-token, key: token}
  - name: owner
    valueFrom:
      fieldRef: {fieldPath: "metadata.labels['team']"}
  - name: revision
  - name: checks
    value: "1"
  metrics:
  - name: release-check
    count: "{{args.checks}}"
    provider:
      job:
        spec:
          backoffLimit: 0
          template:
            spec:
              restartPolicy: Never
              containers:
              - name: run
                image: sandbox/shell
                command: [sh, -c]
                args:
                - >-
                  test "{{args.token}}" = "%s" && test "{{args.owner}}" = payments
                  && test "{{args.revision}}" = "{{canary.hash}}"
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: leaky-check
spec:
  args:
  - name: token
    valueFrom:
      secretKeyRef: {name: check-token, key: token}
  metrics:
  - name: leaky
    provider:
      job:
        spec:
          template:
            spec:
              restartPolicy: Never
              containers:
              - name: run
                image: sandbox/shell
                command: [sh, -c, "echo using token={{args.token}}; exit 3"]
""".replace("%s", SECRET_VALUE)


def steps(template: str) -> list[dict[str, Any]]:
    return [
        {"setWeight": 50},
        {
            "analysis": {
                "templates": [{"name": template}],
                "args": [{"name": "revision", "valueFrom": {"podTemplateHashValue": "Latest"}}]
                if template == "release-check"
                else [],
            }
        },
    ]


def test_a_converted_argo_template_runs_with_its_arguments_and_hides_its_secret(
    cluster: Cluster, start_controller: Any
) -> None:
    converted = convert_text(ARGO_TEMPLATES)
    assert converted.complete, [f.text("templates") for f in converted.findings]
    for document in yaml.safe_load_all(converted.text):
        cluster.create_template(document)
    core: Any = k8s.CoreV1Api(cluster.api)
    core.create_namespaced_secret(
        cluster.namespace,
        {"metadata": {"name": "check-token"}, "stringData": {"token": SECRET_VALUE}},
    )
    start_controller()

    def app(version: str, template: str) -> dict[str, Any]:
        rollout = canary("app", version, steps(template))
        rollout["metadata"]["labels"] = {"team": "payments"}
        return rollout

    cluster.apply_rollout(app("v1", "release-check"))
    v1 = settled(cluster, "app", timeout=90)["stableRevision"]

    cluster.apply_rollout(app("v2", "release-check"))
    status = settled(cluster, "app", timeout=120)
    assert status["phase"] == "Healthy" and status["stableRevision"] != v1, status
    v2 = status["stableRevision"]
    [run] = [r for r in status["analysisRuns"] if r["key"] == "step-1" and r["revision"] == v2]
    assert run["phase"] == "Successful", run
    [job] = [
        j
        for j in jobs_of(cluster, "app")
        if j.metadata.labels.get("deployctl.io/metric") == "release-check"
    ]
    script = job.spec.template.spec.containers[0].args[0]
    assert f'test "{v2}" = "{v2}"' in script and 'test "payments" = payments' in script

    cluster.apply_rollout(app("v3", "leaky-check"))
    status = settled(cluster, "app", timeout=120)
    assert status["phase"] == "Degraded" and status["reason"] == "AnalysisFailed", status
    assert "using token=*****" in status["message"], status["message"]
    everything = yaml.safe_dump(cluster.rollout("app"))
    assert SECRET_VALUE not in everything
