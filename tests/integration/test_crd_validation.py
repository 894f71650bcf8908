"""The cross-field rules of the models, enforced by the apiserver where CEL exists.

``controller.crdgen`` copies each model's CEL rules (``x-kubernetes-validations``) into
the CRDs. On a cluster with CEL (1.25 and later; these tests run on 1.37) ``kubectl
apply`` of a Rollout breaking one is refused with the field path and the same words the
controller would use. A 1.20 apiserver does not know the key: the CRDs still install
(the rules are dropped), the bad Rollout is stored, and the controller's own validation
puts the InvalidSpec condition and Event on it. Every bad spec here is also refused by
the models, so the two checks cannot drift apart unnoticed.
"""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from controller.validation import parse_document
from tests.integration.harness import Cluster, demo_rollout
from tests.waiting import wait_until

CEL = (1, 25)
STEPS = [{"setWeight": 20}, {"pause": {"duration": "1s"}}, {"setWeight": 50}]
GOOD = demo_rollout("shop", version="v1", replicas=1, strategy={"canary": {"steps": STEPS}})


def about(name: str) -> Callable[[list[Any]], bool]:
    """Whether some Event in a list is about the object ``name``."""
    return lambda events: any(e.involved_object.name == name for e in events)


def _with(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(GOOD)
    node: Any = out
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return out


# name -> (Rollout, the field path the apiserver names, words of the message)
BAD: dict[str, tuple[dict[str, Any], str, str]] = {
    "two-strategies": (
        _with(("spec", "strategy"), {"canary": {"steps": STEPS}, "rolling": {}}),
        "spec.strategy",
        "exactly one of canary, blueGreen, rolling",
    ),
    "no-strategy": (
        _with(("spec", "strategy"), {}),
        "spec.strategy",
        "exactly one of canary, blueGreen, rolling",
    ),
    "decreasing-weights": (
        _with(("spec", "strategy", "canary", "steps"), [{"setWeight": 50}, {"setWeight": 20}]),
        "spec.strategy.canary.steps",
        "must not decrease",
    ),
    "step-with-two-kinds": (
        _with(
            ("spec", "strategy", "canary", "steps"), [{"setWeight": 10, "pause": {"duration": 1}}]
        ),
        "spec.strategy.canary.steps[0]",
        "a step takes exactly one of setWeight, pause, analysis, approval",
    ),
    "same-active-and-preview": (
        _with(("spec", "strategy"), {"blueGreen": {"activeService": "s", "previewService": "s"}}),
        "spec.strategy.blueGreen.previewService",
        "activeService and previewService must be different",
    ),
    "dynamic-scale-without-routing": (
        _with(("spec", "strategy", "canary", "dynamicStableScale"), True),
        "spec.strategy.canary.dynamicStableScale",
        "dynamicStableScale needs trafficRouting",
    ),
    "baseline-beside-a-full-stable": (
        _with(
            ("spec", "strategy", "canary"),
            {"steps": STEPS, "stableScale": "full", "baseline": {"enabled": True}},
        ),
        "spec.strategy.canary.baseline",
        "baseline pods are built for a canary by replica share",
    ),
    "baseline-behind-nginx": (
        _with(
            ("spec", "strategy", "canary"),
            {
                "steps": STEPS,
                "stableService": "shop",
                "canaryService": "shop-canary",
                "trafficRouting": {"nginx": {"stableIngress": "shop"}},
                "baseline": {"enabled": True},
            },
        ),
        "spec.strategy.canary.baseline",
        "baseline needs a router that can carry a third backend",
    ),
    "baseline-with-dynamic-stable-scale": (
        _with(
            ("spec", "strategy", "canary"),
            {
                "steps": STEPS,
                "stableService": "shop",
                "canaryService": "shop-canary",
                "trafficRouting": {"gatewayAPI": {"httpRoute": "shop"}},
                "dynamicStableScale": True,
                "baseline": {"enabled": True},
            },
        ),
        "spec.strategy.canary.baseline",
        "baseline and dynamicStableScale cannot be combined",
    ),
    "template-and-workloadref": (
        _with(("spec", "workloadRef"), {"name": "shop", "scaleDown": "onsuccess"}),
        "spec",
        "exactly one of template, workloadRef",
    ),
    "neither-template-nor-workloadref": (
        {**GOOD, "spec": {k: v for k, v in GOOD["spec"].items() if k != "template"}},
        "spec",
        "exactly one of template, workloadRef",
    ),
    "rolling-cannot-move": (
        _with(("spec", "strategy"), {"rolling": {"maxSurge": 0, "maxUnavailable": "0%"}}),
        "spec.strategy.rolling",
        "cannot both be 0",
    ),
}


def named(name: str) -> dict[str, Any]:
    body = copy.deepcopy(BAD[name][0])
    body["metadata"]["name"] = name
    return body


@pytest.mark.parametrize("name", sorted(BAD))
def test_the_models_refuse_every_bad_spec_too(name: str) -> None:
    parsed = parse_document(named(name))
    assert parsed.model is None
    assert any(BAD[name][2] in p.message for p in parsed.problems), parsed.problems


def test_kubectl_apply_of_a_bad_rollout_is_refused_with_the_field_path(
    control_plane: Any, namespace: str, tmp_path: Path
) -> None:
    if control_plane.minor < CEL:
        pytest.skip("CRD validation rules (CEL) arrived in 1.25")
    kubectl = control_plane.kubectl
    assert kubectl is not None, "the 1.37 build includes kubectl"
    for name, (_body, field_path, words) in sorted(BAD.items()):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(named(name)))
        done = subprocess.run(
            [str(kubectl), "--kubeconfig", str(control_plane.kubeconfig), "-n", namespace]
            + ["apply", "-f", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode != 0, f"{name} was accepted: {done.stdout}"
        assert "is invalid" in done.stderr, done.stderr
        assert f"{field_path}:" in done.stderr, (name, done.stderr)
        assert words in done.stderr, (name, done.stderr)
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(GOOD))
    accepted = subprocess.run(
        [str(kubectl), "--kubeconfig", str(control_plane.kubeconfig), "-n", namespace]
        + ["apply", "-f", str(good)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert accepted.returncode == 0, accepted.stderr


def test_the_crds_carry_the_rules_where_cel_exists(control_plane: Any, kube_api: Any) -> None:
    extensions: Any = k8s.ApiextensionsV1Api(kube_api)
    crd = extensions.read_custom_resource_definition("rollouts.deployctl.io")
    strategy = (
        crd.spec.versions[0].schema.open_apiv3_schema.properties["spec"].properties["strategy"]
    )
    rules = strategy.x_kubernetes_validations or []
    if control_plane.minor < CEL:
        assert rules == []  # dropped by the older apiserver, and the CRD still installed
    else:
        assert [r.message for r in rules] == [
            "strategy takes exactly one of canary, blueGreen, rolling"
        ]


def test_without_cel_the_controller_still_reports_invalid_spec(
    control_plane: Any, cluster: Cluster, start_controller: Any
) -> None:
    if control_plane.minor >= CEL:
        pytest.skip("the apiserver refuses these itself (test above)")
    start_controller()
    for name in ("two-strategies", "same-active-and-preview", "decreasing-weights"):
        cluster.apply_rollout(named(name))  # stored: 1.20 knows no validation rules
    for name in ("two-strategies", "same-active-and-preview", "decreasing-weights"):
        status = wait_until(
            lambda: cluster.status(name),  # noqa: B023 - polled before the next turn
            ok=lambda s: any(
                c["type"] == "InvalidSpec" and c["status"] == "True"
                for c in s.get("conditions", [])
            ),
            timeout=60,
            what=f"InvalidSpec on {name}",
        )
        assert BAD[name][2] in status["message"], status
        cluster.events_when(
            about(name),
            reason="InvalidSpec",
            what=f"an InvalidSpec Event about {name}",
        )
