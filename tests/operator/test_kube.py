"""The Kubernetes adapter against the sandbox's real apiserver (and the fault proxy)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

import controller.kube.transport as transport
from controller.kube import (
    EVENTS,
    REPLICASETS,
    AlreadyExists,
    Conflict,
    Forbidden,
    Gone,
    KindRef,
    Kube,
    NamespaceTerminating,
    NotFound,
    RetryPolicy,
    Transient,
)
from controller.metrics import REGISTRY
from sandbox.faultproxy import FaultProxy, Faults
from tests.operator.helpers import core_api, custom_api
from tests.waiting import wait_until

CONFIGMAPS = KindRef("", "v1", "configmaps", "ConfigMap")
FAST_RETRY = RetryPolicy(attempts=4, initial=0.01, maximum=0.05, jitter=0.0)


@pytest.fixture
def kube(control_plane: Any) -> Iterator[Kube]:
    adapter = Kube(control_plane.api_client(), retry=FAST_RETRY)
    yield adapter
    adapter.close()


def api_count(verb: str, resource: str, code: str) -> float:
    value = REGISTRY.get_sample_value(
        "deployctl_api_requests_total", {"verb": verb, "resource": resource, "code": code}
    )
    return value or 0.0


def make_configmap(kube_api: k8s.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    core = core_api(kube_api)
    created = core.create_namespaced_config_map(
        namespace, {"metadata": {"name": name}, "data": {"k": "v"}}
    )
    return {"name": created.metadata.name, "rv": created.metadata.resource_version}


def rollout_body(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "deployctl.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "demo:1"}]},
            },
            "strategy": {"canary": {"steps": [{"setWeight": 50}]}},
        },
    }


def create_rollout(kube_api: k8s.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    api = custom_api(kube_api)
    created: dict[str, Any] = api.create_namespaced_custom_object(
        "deployctl.io", "v1alpha1", namespace, "rollouts", rollout_body(name)
    )
    return created


# --------------------------------------------------------------------------- retries


def test_retries_a_500_then_succeeds(
    fault_proxy: FaultProxy, namespace: str, kube_api: Any
) -> None:
    make_configmap(kube_api, namespace, "a")
    sleeps: list[float] = []

    def heal_and_sleep(seconds: float) -> None:
        # The first failure has been seen: heal the "apiserver" before the retry.
        sleeps.append(seconds)
        fault_proxy.set_faults(Faults())

    adapter = Kube(fault_proxy.api_client(), retry=FAST_RETRY, sleep=heal_and_sleep)
    before_500 = api_count("get", "configmaps", "500")
    fault_proxy.set_faults(Faults(error_rate_500=1.0))
    obj = adapter.get(CONFIGMAPS, namespace, "a")
    assert obj["data"] == {"k": "v"}
    assert len(sleeps) == 1
    stats = fault_proxy.stats()
    assert stats.count(verb="get", path="/configmaps/a", injected=True) == 1
    assert stats.count(verb="get", path="/configmaps/a", status=200) == 1
    assert api_count("get", "configmaps", "500") == before_500 + 1


def test_429_retry_honours_retry_after(fault_proxy: FaultProxy, namespace: str) -> None:
    sleeps: list[float] = []

    def heal_and_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        fault_proxy.set_faults(Faults())

    adapter = Kube(fault_proxy.api_client(), retry=FAST_RETRY, sleep=heal_and_sleep)
    fault_proxy.set_faults(Faults(rate_429=1.0, retry_after_seconds=2))
    listing = adapter.list_objects(CONFIGMAPS, namespace)
    assert listing.resource_version
    assert sleeps == [2.0], "the server's Retry-After outweighs our 10 ms backoff"


def test_persistent_5xx_gives_up_after_bounded_attempts(
    fault_proxy: FaultProxy, namespace: str
) -> None:
    adapter = Kube(fault_proxy.api_client(), retry=FAST_RETRY)
    with fault_proxy.injecting(error_rate_500=1.0), pytest.raises(Transient) as info:
        adapter.get(CONFIGMAPS, namespace, "whatever")
    assert info.value.code == 500
    assert fault_proxy.stats().count(verb="get", injected=True) == FAST_RETRY.attempts


def test_connection_refused_is_transient(control_plane: Any) -> None:
    from sandbox.controlplane import make_api_client

    dead = make_api_client(server="http://127.0.0.1:9", token="t", ca_file=None)
    adapter = Kube(dead, retry=RetryPolicy(attempts=2, initial=0.01, jitter=0))
    with pytest.raises(Transient) as info:
        adapter.get(CONFIGMAPS, "default", "x")
    assert info.value.code is None
    assert "t" not in repr(adapter).replace("Kube(host=", "").replace("http", "")


# --------------------------------------------------------------------------- errors


def test_forbidden_names_verb_and_resource(control_plane: Any, namespace: str) -> None:
    alice = Kube(control_plane.api_client("alice"), retry=FAST_RETRY)
    with pytest.raises(Forbidden) as info:
        alice.list_objects(REPLICASETS, namespace)
    message = str(info.value)
    assert "list" in message and "replicasets.apps" in message and namespace in message
    assert info.value.code == 403


def test_not_found_and_already_exists(kube: Kube, namespace: str) -> None:
    with pytest.raises(NotFound):
        kube.get_rollout(namespace, "missing")
    kube.create_lease(namespace, "l", {"holderIdentity": "x"})
    with pytest.raises(AlreadyExists):
        kube.create_lease(namespace, "l", {"holderIdentity": "x"})


def test_conflict_is_surfaced_without_retry(
    fault_proxy: FaultProxy, namespace: str, kube_api: Any
) -> None:
    create_rollout(kube_api, namespace, "r")
    adapter = Kube(fault_proxy.api_client(), retry=FAST_RETRY)
    current = adapter.get_rollout(namespace, "r")
    stale = current["metadata"]["resourceVersion"]
    adapter.patch_rollout(
        namespace, "r", {"metadata": {"annotations": {"a": "1"}}}, resource_version=stale
    )
    fault_proxy.reset_stats()
    with pytest.raises(Conflict):
        adapter.patch_rollout(
            namespace, "r", {"metadata": {"annotations": {"a": "2"}}}, resource_version=stale
        )
    assert fault_proxy.stats().count(verb="patch") == 1, "409 must not be retried"


# --------------------------------------------------------------------------- list / watch


def test_list_paginates_and_fills_kind(
    kube: Kube, namespace: str, kube_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for index in range(5):
        make_configmap(kube_api, namespace, f"cm-{index}")
    monkeypatch.setattr(transport, "_LIST_PAGE_SIZE", 2)
    listing = kube.list_objects(CONFIGMAPS, namespace)
    names = sorted(item["metadata"]["name"] for item in listing.items)
    assert [n for n in names if n.startswith("cm-")] == [f"cm-{i}" for i in range(5)]
    assert all(item["kind"] == "ConfigMap" for item in listing.items)
    assert listing.resource_version.isdigit()


def test_watch_yields_events_from_a_resource_version(
    kube: Kube, namespace: str, kube_api: Any
) -> None:
    listing = kube.list_objects(CONFIGMAPS, namespace)
    make_configmap(kube_api, namespace, "w")
    stream = kube.watch_objects(
        CONFIGMAPS, namespace, resource_version=listing.resource_version, timeout_seconds=5
    )
    seen = []
    for event_type, obj in stream:
        seen.append((event_type, obj["metadata"]["name"]))
        if ("ADDED", "w") in seen:
            stream.close()
    assert ("ADDED", "w") in seen
    assert stream.closed


def test_watch_from_a_compacted_resource_version_raises_gone(
    kube: Kube, namespace: str, kube_api: Any
) -> None:
    """A real 410: the sandbox compacts etcd every 10 s and serves watches without a cache."""
    old = kube.list_objects(CONFIGMAPS, namespace).resource_version
    deadline = time.monotonic() + 60
    for attempt in range(10_000):
        make_configmap(kube_api, namespace, f"churn-{attempt}")  # new revisions to compact
        try:
            stream = kube.watch_objects(
                CONFIGMAPS, namespace, resource_version=old, timeout_seconds=1
            )
            for _ in stream:
                pass
        except Gone as exc:
            assert exc.code == 410
            return
        assert time.monotonic() < deadline, "etcd never compacted the old resourceVersion"
        time.sleep(1)  # pace the churn: one revision a second is plenty for compaction


# --------------------------------------------------------------------------- rollouts


def test_status_patch_bumps_resource_version_not_generation(
    kube: Kube, namespace: str, kube_api: Any
) -> None:
    created = create_rollout(kube_api, namespace, "r")
    generation = created["metadata"]["generation"]
    rv = created["metadata"]["resourceVersion"]
    patched = kube.patch_rollout_status(
        namespace,
        "r",
        {"phase": "Progressing", "observedGeneration": generation, "weight": 10},
        resource_version=rv,
    )
    assert patched["status"]["phase"] == "Progressing"
    assert patched["metadata"]["generation"] == generation
    assert int(patched["metadata"]["resourceVersion"]) > int(rv)
    # Spec sent to /status is ignored; None removes a status key.
    again = kube.patch_rollout_status(namespace, "r", {"weight": None})
    assert "weight" not in again["status"]
    with pytest.raises(Conflict):
        kube.patch_rollout_status(namespace, "r", {"weight": 5}, resource_version=rv)


def test_spec_patch_bumps_generation(kube: Kube, namespace: str, kube_api: Any) -> None:
    created = create_rollout(kube_api, namespace, "r")
    patched = kube.patch_rollout(
        namespace,
        "r",
        {"spec": {"paused": True}},
        resource_version=created["metadata"]["resourceVersion"],
    )
    assert patched["spec"]["paused"] is True
    assert patched["metadata"]["generation"] == created["metadata"]["generation"] + 1


# --------------------------------------------------------------------------- replicasets etc.


def test_replicaset_lifecycle_owned_by_the_rollout(
    kube: Kube, namespace: str, kube_api: Any
) -> None:
    rollout = create_rollout(kube_api, namespace, "r")
    body = {
        "metadata": {"name": "r-abc", "labels": {"deployctl.io/revision": "abc"}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "r", "deployctl.io/revision": "abc"}},
            "template": {
                "metadata": {"labels": {"app": "r", "deployctl.io/revision": "abc"}},
                "spec": {"containers": [{"name": "app", "image": "demo:1"}]},
            },
        },
    }
    created = kube.create_replicaset(namespace, body, owner=rollout)
    (ref,) = created["metadata"]["ownerReferences"]
    assert ref["uid"] == rollout["metadata"]["uid"]
    assert ref["controller"] is True and ref["blockOwnerDeletion"] is True
    scaled = kube.scale_replicaset(namespace, "r-abc", 3)
    assert scaled["spec"]["replicas"] == 3
    with pytest.raises(Conflict):
        kube.scale_replicaset(
            namespace, "r-abc", 1, resource_version=created["metadata"]["resourceVersion"]
        )
    assert kube.delete_replicaset(namespace, "r-abc", uid=created["metadata"]["uid"]) is True
    assert kube.delete_replicaset(namespace, "r-abc") is False


def test_service_selector_patch(kube: Kube, namespace: str, kube_api: Any) -> None:
    core_api(kube_api).create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "svc"},
            "spec": {"selector": {"app": "r", "old": "x"}, "ports": [{"port": 80}]},
        },
    )
    patched = kube.patch_service_selector(
        namespace, "svc", {"deployctl.io/revision": "abc", "old": None}
    )
    assert patched["spec"]["selector"] == {"app": "r", "deployctl.io/revision": "abc"}


def test_httproute_weights(kube: Kube, namespace: str, kube_api: Any, httproute_crd: str) -> None:
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "route"},
        "spec": {
            "rules": [
                {
                    "backendRefs": [
                        {"name": "stable", "port": 80, "weight": 100},
                        {"name": "canary", "port": 80, "weight": 0},
                    ]
                }
            ]
        },
    }
    created = custom_api(kube_api).create_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", namespace, "httproutes", route
    )
    updated = kube.set_httproute_weights(namespace, "route", {"stable": 90, "canary": 10})
    refs = updated["spec"]["rules"][0]["backendRefs"]
    assert [(r["name"], r["weight"]) for r in refs] == [("stable", 90), ("canary", 10)]
    unchanged = kube.set_httproute_weights(namespace, "route", {"stable": 90}, route=updated)
    assert unchanged["metadata"]["resourceVersion"] == updated["metadata"]["resourceVersion"]
    with pytest.raises(Conflict):
        kube.set_httproute_weights(namespace, "route", {"stable": 50}, route=created)


def test_events_are_recorded_and_aggregated(kube: Kube, namespace: str, kube_api: Any) -> None:
    rollout = create_rollout(kube_api, namespace, "r")
    first = kube.record_event(rollout, reason="StepCompleted", message="step 1 done")
    second = kube.record_event(rollout, reason="StepCompleted", message="step 1 done")
    assert second["metadata"]["name"] == first["metadata"]["name"]
    assert second["count"] == 2
    assert first["source"]["component"] == "deployctl"
    assert first["involvedObject"]["uid"] == rollout["metadata"]["uid"]
    # A fresh adapter (a restarted controller) still aggregates onto the same Event.
    restarted = Kube(kube_api, retry=FAST_RETRY)
    third = restarted.record_event(rollout, reason="StepCompleted", message="step 1 done")
    assert third["count"] == 3
    other = kube.record_event(rollout, reason="Aborted", message="error rate 0.3", type="Warning")
    assert other["metadata"]["name"] != first["metadata"]["name"]
    assert len(kube.list_objects(EVENTS, namespace).items) == 2


def test_creating_in_a_namespace_being_deleted_is_its_own_error_and_events_are_dropped(
    kube: Kube, kube_api: Any
) -> None:
    core: Any = k8s.CoreV1Api(kube_api)
    name = f"t-term-{time.monotonic_ns() % 10**8}"
    core.create_namespace({"metadata": {"name": name}})
    # A finalizer holds the namespace in Terminating for as long as the test needs.
    held = {"metadata": {"name": "held", "finalizers": ["deployctl.io/test-hold"]}}
    core.create_namespaced_config_map(name, held)
    rollout = create_rollout(kube_api, name, "r")
    core.delete_namespace(name)
    wait_until(
        lambda: core.read_namespace(name).status.phase == "Terminating",
        timeout=30,
        what="the namespace to be Terminating",
    )
    try:
        with pytest.raises(NamespaceTerminating, match=f"namespace {name} is being deleted"):
            kube.create_object(CONFIGMAPS, name, {"metadata": {"name": "new"}})
        assert kube.record_event(rollout, reason="Aborted", message="x") == {}
    finally:
        core.patch_namespaced_config_map("held", name, {"metadata": {"finalizers": None}})


def test_lease_update_needs_the_current_resource_version(kube: Kube, namespace: str) -> None:
    created = kube.create_lease(namespace, "l", {"holderIdentity": "a", "leaseDurationSeconds": 2})
    rv = created["metadata"]["resourceVersion"]
    updated = kube.update_lease(
        namespace,
        "l",
        {"holderIdentity": "b", "renewTime": "2024-01-01T00:00:00.000000Z"},
        resource_version=rv,
    )
    assert updated["spec"]["holderIdentity"] == "b"
    assert re.fullmatch(r".*\.\d{6}Z", updated["spec"]["renewTime"])
    with pytest.raises(Conflict):
        kube.update_lease(namespace, "l", {"holderIdentity": "c"}, resource_version=rv)
