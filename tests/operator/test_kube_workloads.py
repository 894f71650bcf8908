"""The adapter's StatefulSet, DaemonSet and pod writes against the sandbox's real apiserver.

What a StatefulSet or DaemonSet canary will send: a partition, a template (with the
partition in the same write), a DaemonSet's updateStrategy switched and restored exactly,
and a pod deleted only if it is still the pod meant. The StatefulSet controller of the
real kube-controller-manager shows that a template put back is the same revision.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from controller.kube import (
    DAEMONSETS,
    PODS,
    STATEFULSETS,
    Conflict,
    Kube,
    Permanent,
    RetryPolicy,
)
from tests.operator.helpers import core_api
from tests.waiting import wait_until

FAST_RETRY = RetryPolicy(attempts=4, initial=0.01, maximum=0.05, jitter=0.0)
# No Node is chosen: these pods may stay Pending, the writes are what is tested.
NOWHERE = {"nodeSelector": {"sandbox.deployctl.io/agent": "no-such-agent"}}


@pytest.fixture
def kube(control_plane: Any) -> Iterator[Kube]:
    adapter = Kube(control_plane.api_client(), retry=FAST_RETRY)
    yield adapter
    adapter.close()


def template(app: str, image: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    first: dict[str, Any] = {"name": "app", "image": image}
    if env:
        first["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return {"metadata": {"labels": {"app": app}}, "spec": {**NOWHERE, "containers": [first]}}


def update_revision(kube: Kube, namespace: str, name: str, *, not_: str | None = None) -> str:
    return str(
        wait_until(
            lambda: kube.get(STATEFULSETS, namespace, name).get("status", {}).get("updateRevision"),
            ok=lambda revision: bool(revision) and revision != not_,
            timeout=60,
            what=f"the StatefulSet's updateRevision (other than {not_})",
        )
    )


def test_statefulset_partition_and_template_round_trip(kube: Kube, namespace: str) -> None:
    body = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {
            "replicas": 5,
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": template("db", "shop/db:v1", {"MODE": "primary"}),
        },
    }
    kube.create_object(STATEFULSETS, namespace, body)
    first = update_revision(kube, namespace, "db")
    current = kube.get(STATEFULSETS, namespace, "db")
    previous = copy.deepcopy(current["spec"]["template"])

    # A new template and partition 4 in one write: only ordinal 4 may move.
    written = kube.patch_statefulset_template(current, template("db", "shop/db:v2"), partition=4)
    assert written["spec"]["updateStrategy"]["rollingUpdate"]["partition"] == 4
    (container,) = written["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "shop/db:v2" and "env" not in container  # removed, not kept
    second = update_revision(kube, namespace, "db", not_=first)

    moved = kube.patch_statefulset_partition(namespace, "db", 2)
    assert moved["spec"]["updateStrategy"]["rollingUpdate"]["partition"] == 2
    assert moved["spec"]["template"] == written["spec"]["template"]

    # A stale read is refused: nothing is written over a change we have not seen.
    with pytest.raises(Conflict, match="changed since generation"):
        kube.patch_statefulset_template(current, previous, partition=4)

    # A template the apiserver refuses (labels off the selector) stays that error.
    with pytest.raises(Permanent, match="422"):
        kube.patch_statefulset_template(
            kube.get(STATEFULSETS, namespace, "db"), template("other", "x:1"), partition=None
        )

    # The previous template back (with the partition for the first rollback step):
    # the same ControllerRevision, so the pods coming back have the old hash.
    latest = kube.get(STATEFULSETS, namespace, "db")
    back = kube.patch_statefulset_template(latest, previous, partition=4)
    assert back["spec"]["template"] == previous
    assert update_revision(kube, namespace, "db", not_=second) == first


def test_daemonset_strategy_switched_and_restored_exactly(kube: Kube, namespace: str) -> None:
    users = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2, "maxSurge": 0}}
    body = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "updateStrategy": users,
            "template": template("agent", "shop/agent:v1", {"LEVEL": "debug"}),
        },
    }
    created = kube.create_object(DAEMONSETS, namespace, body)
    assert created["spec"]["updateStrategy"] == users

    owned = kube.patch_daemonset_update_strategy(namespace, "agent", {"type": "OnDelete"})
    assert owned["spec"]["updateStrategy"] == {"type": "OnDelete"}

    changed = kube.patch_daemonset_template(owned, template("agent", "shop/agent:v2"))
    (container,) = changed["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "shop/agent:v2" and "env" not in container
    assert changed["spec"]["updateStrategy"] == {"type": "OnDelete"}
    # A read from before a spec change is refused (the controller's status writes alone
    # would not be: the precondition is the generation).
    with pytest.raises(Conflict, match="changed since generation"):
        kube.patch_daemonset_template(created, template("agent", "shop/agent:v3"))

    restored = kube.patch_daemonset_update_strategy(namespace, "agent", users)
    assert restored["spec"]["updateStrategy"] == users
    assert restored["spec"]["template"] == changed["spec"]["template"]


def test_a_pod_is_deleted_only_while_it_has_the_uid_meant(
    kube: Kube, namespace: str, kube_api: Any
) -> None:
    pod = {
        "metadata": {"name": "p"},
        "spec": {**NOWHERE, "containers": [{"name": "a", "image": "x"}]},
    }
    created = kube.create_object(PODS, namespace, pod)
    # Another UID (the pod meant was replaced by a namesake): untouched.
    assert kube.delete_pod(namespace, "p", uid="00000000-0000-0000-0000-000000000000") is False
    assert kube.get(PODS, namespace, "p")["metadata"]["uid"] == created["metadata"]["uid"]
    assert kube.delete_pod(namespace, "p", uid=created["metadata"]["uid"]) is True
    # An unbound pod is gone at once; deleting it again says so.
    wait_until(
        lambda: (
            "p"
            not in {
                i.metadata.name for i in core_api(kube_api).list_namespaced_pod(namespace).items
            }
        ),
        timeout=30,
        what="the pod to be gone",
    )
    assert kube.delete_pod(namespace, "p", uid=created["metadata"]["uid"]) is False
