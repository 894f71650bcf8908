"""The calls of a pass for a Rollout that delivers a DaemonSet (``workloadRef: {kind:
DaemonSet}``), with a recording double of our ``Kube`` adapter and dict caches.

What the lists show: a new revision under the user's RollingUpdate is first held at
OnDelete, alone (no pod deleted in that pass), and the Rollout gets an
``UpdateStrategyHeld`` Event after its status; once every Node runs the stable revision
the user's strategy is handed back and an ``UpdateStrategyRestored`` Event follows the
status. A pass that changes neither records neither. The sandbox test is
tests/integration/test_daemonset.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from controller.analysis.run import AnalysisEngine
from controller.api import reasons as R
from controller.daemon import STRATEGY_ANNOTATION
from controller.reconciler import Caches, Reconciler
from tests.engine.doubles import DictCache, RecordingKube, ScriptedMeasurer
from tests.engine.fixture import NAME, NS, no_data, rollout_object

OLD, NEW = "5f8a7c9d4", "6d4b8e2f1"
NODES = [f"n{i}" for i in range(4)]
USERS = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}}
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def rollout(stable: str) -> dict[str, Any]:
    """The Rollout of the DaemonSet, Healthy on ``stable`` at the end of its steps."""
    body = rollout_object({"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}})
    del body["spec"]["template"], body["spec"]["selector"], body["spec"]["replicas"]
    body["spec"]["workloadRef"] = {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": NAME}
    body["status"] = {
        "phase": "Healthy",
        "observedGeneration": 1,
        "stableRevision": stable,
        "currentStepIndex": 2,
    }
    return body


def daemonset(*, held: bool) -> dict[str, Any]:
    return {
        "metadata": {
            "name": NAME,
            "namespace": NS,
            "uid": "ds-uid",
            "generation": 2,
            "resourceVersion": "7",
            "annotations": {STRATEGY_ANNOTATION: json.dumps(USERS)} if held else {},
        },
        "spec": {
            "selector": {"matchLabels": {"app": NAME}},
            "updateStrategy": {"type": "OnDelete"} if held else USERS,
            "template": {
                "metadata": {"labels": {"app": NAME}},
                "spec": {"containers": [{"name": "app", "image": "agent:2"}]},
            },
        },
        "status": {
            "observedGeneration": 2,
            "desiredNumberScheduled": len(NODES),
            "updatedNumberScheduled": len(NODES),
        },
    }


def controller_revision(value: str, number: int) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"{NAME}-{value}",
            "namespace": NS,
            "labels": {"controller-revision-hash": value},
            "ownerReferences": [{"kind": "DaemonSet", "uid": "ds-uid"}],
        },
        "revision": number,
    }


def pod(node: str, revision: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"{NAME}-{node}",
            "namespace": NS,
            "uid": f"{node}-{revision}",
            "labels": {"app": NAME, "controller-revision-hash": revision},
            "ownerReferences": [{"kind": "DaemonSet", "uid": "ds-uid"}],
            "creationTimestamp": "2026-03-01T11:00:00Z",
        },
        "spec": {"nodeName": node},
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "2026-03-01T11:00:00Z"}
            ],
        },
    }


def one_pass(*, stable: str, held: bool, pods_on: str, revisions: tuple[str, ...]) -> RecordingKube:
    kube = RecordingKube()
    reconciler = Reconciler(
        kube,
        Caches(
            rollouts=DictCache(rollout(stable)),
            templates=DictCache(),
            replicasets=DictCache(),
            pods=DictCache(),
            services=DictCache(),
            daemonsets=DictCache(daemonset(held=held)),
            controller_revisions=DictCache(
                *(controller_revision(r, n) for n, r in enumerate(revisions, start=1))
            ),
            workload_pods=DictCache(*(pod(n, pods_on) for n in NODES)),
            nodes=DictCache(*({"metadata": {"name": n}} for n in NODES)),
        ),
        engine=AnalysisEngine(ScriptedMeasurer(no_data)),
        clock=lambda: T0,
    )
    reconciler.reconcile(f"{NS}/{NAME}")
    return kube


def test_a_new_revision_is_held_at_on_delete_alone_and_an_event_says_so() -> None:
    kube = one_pass(stable=OLD, held=False, pods_on=OLD, revisions=(OLD, NEW))
    # The hold alone (no pod deleted in this pass), status, then the plan's Events and ours.
    assert kube.calls == [
        ("strategy", NAME, "OnDelete"),
        ("status", NAME),
        ("event", "Normal", R.NEW_REVISION),
        ("event", "Normal", R.STEP_STARTED),
        ("event", "Normal", R.UPDATE_STRATEGY_HELD),
    ]
    held = kube.messages[-1]
    assert f"DaemonSet {NAME} held at OnDelete" in held
    assert f"RollingUpdate is kept in annotation {STRATEGY_ANNOTATION}" in held


def test_the_users_strategy_handed_back_once_every_node_is_stable_with_an_event() -> None:
    kube = one_pass(stable=NEW, held=True, pods_on=NEW, revisions=(OLD, NEW))
    assert kube.calls == [
        ("strategy", NAME, "RollingUpdate"),
        ("status", NAME),
        ("event", "Normal", R.UPDATE_STRATEGY_RESTORED),
    ]
    restored = kube.messages[-1]
    assert restored == (
        f"DaemonSet {NAME}: its updateStrategy RollingUpdate restored; every Node runs "
        f"revision {NEW}"
    )


def test_a_pass_at_rest_under_the_users_strategy_records_no_strategy_event() -> None:
    kube = one_pass(stable=NEW, held=False, pods_on=NEW, revisions=(OLD, NEW))
    assert kube.calls == [("status", NAME)]
    assert kube.status_patches[0]["daemonSet"]["nodes"] == {NEW: NODES}
