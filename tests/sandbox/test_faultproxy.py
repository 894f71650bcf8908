"""Tests of the fault-injecting proxy (sandbox.faultproxy) through the official client.

The classification tests are pure; the rest run against the real apiserver of the
``control_plane`` fixture, so the faults are checked as the controller will see them.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from sandbox.faultproxy import FaultProxy, classify
from tests.fixtures_cluster import Watch, name_of
from tests.waiting import wait_until


@pytest.mark.parametrize(
    ("method", "target", "verb"),
    [
        ("GET", "/api/v1/namespaces/ns/pods", "list"),
        ("GET", "/api/v1/namespaces/ns/pods?watch=true&resourceVersion=5", "watch"),
        ("GET", "/api/v1/namespaces/ns/pods/p1", "get"),
        ("GET", "/api/v1/namespaces", "list"),
        ("GET", "/api/v1/namespaces/ns", "get"),
        ("POST", "/apis/deployctl.io/v1alpha1/namespaces/ns/rollouts", "create"),
        ("PATCH", "/apis/deployctl.io/v1alpha1/namespaces/ns/rollouts/r/status", "patch"),
        ("PUT", "/apis/apps/v1/namespaces/ns/replicasets/rs", "update"),
        ("DELETE", "/api/v1/namespaces/ns/configmaps/c", "delete"),
        ("DELETE", "/api/v1/namespaces/ns/configmaps", "deletecollection"),
        ("GET", "/apis/deployctl.io/v1alpha1", "get"),
        ("GET", "/version", "get"),
    ],
)
def test_requests_are_classified_by_kubernetes_verb(method, target, verb):
    assert classify(method, target).verb == verb


def core_via(proxy: FaultProxy) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(proxy.api_client())


def config_map(name: str, **data: str) -> k8s.V1ConfigMap:
    return k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name=name), data=data or None)


def list_version(core: k8s.CoreV1Api, namespace: str) -> str | None:
    metadata = core.list_namespaced_config_map(namespace).metadata
    assert metadata is not None
    return metadata.resource_version


def status_of(exc: k8s.ApiException) -> dict[str, Any]:
    status: dict[str, Any] = json.loads(exc.body or "{}")
    return status


def test_forwards_and_counts_requests(fault_proxy, namespace):
    core = core_via(fault_proxy)
    core.create_namespaced_config_map(namespace, config_map("a", k="v"))
    assert core.read_namespaced_config_map("a", namespace).data == {"k": "v"}
    listed = {name_of(cm) for cm in core.list_namespaced_config_map(namespace).items}
    assert "a" in listed  # beside kube-root-ca.crt, which the controller-manager publishes
    stats = fault_proxy.stats()
    assert stats.count(verb="create", path="/configmaps", status=201) == 1
    assert stats.count(verb="get", path="/configmaps/a", status=200) == 1
    assert stats.count(verb="list", path="/configmaps") == 1
    assert stats.count(injected=True) == 0


def test_kubeconfig_points_at_the_proxy(fault_proxy, tmp_path):
    path = fault_proxy.kubeconfig(tmp_path / "kubeconfig")
    loader: Any = k8s_config.new_client_from_config  # unannotated in the client
    with loader(str(path), context="sandbox") as api:
        k8s.CoreV1Api(api).list_namespace()
    assert fault_proxy.stats().count(verb="list", path="/api/v1/namespaces") == 1


def test_injected_500_reaches_the_client_as_a_status(fault_proxy, namespace):
    core = core_via(fault_proxy)
    with fault_proxy.injecting(error_rate_500=1.0):
        with pytest.raises(k8s.ApiException) as failed:
            core.list_namespaced_config_map(namespace)
    assert failed.value.status == 500
    assert status_of(failed.value)["reason"] == "InternalError"
    core.list_namespaced_config_map(namespace)  # faults off again after the block


def test_injected_429_carries_retry_after(fault_proxy, namespace):
    fault_proxy.rate_429 = 1.0
    with pytest.raises(k8s.ApiException) as throttled:
        core_via(fault_proxy).create_namespaced_config_map(namespace, config_map("b"))
    assert throttled.value.status == 429
    assert throttled.value.headers is not None
    assert throttled.value.headers["Retry-After"] == "1"
    status = status_of(throttled.value)
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "TooManyRequests", 429)
    assert fault_proxy.stats().count(status=429, injected=True) == 1


def test_error_rate_is_a_share_of_requests(control_plane, namespace):
    proxy = FaultProxy(control_plane.server, ca_file=control_plane.ca_file, seed=7)
    with proxy:
        proxy.error_rate_500 = 0.3
        core = k8s.CoreV1Api(proxy.api_client(token=control_plane.token))
        for _ in range(100):
            try:
                core.list_namespaced_config_map(namespace)
            except k8s.ApiException as exc:
                assert exc.status == 500
        failures = proxy.stats().count(status=500)
    assert 15 <= failures <= 45, failures


def test_added_latency_delays_every_request(fault_proxy, namespace):
    core = core_via(fault_proxy)
    core.list_namespaced_config_map(namespace)  # connection set up outside the timing
    fault_proxy.latency_seconds = 0.3
    began = time.monotonic()
    core.list_namespaced_config_map(namespace)
    assert time.monotonic() - began >= 0.3


def test_watch_events_are_streamed_without_buffering(fault_proxy, kube_api, namespace):
    core = core_via(fault_proxy)
    version = list_version(core, namespace)

    def create_once_watching() -> None:
        wait_until(
            lambda: fault_proxy.stats().count(verb="watch") == 1, timeout=10, what="the watch"
        )
        k8s.CoreV1Api(kube_api).create_namespaced_config_map(namespace, config_map("c"))

    creator = threading.Thread(target=create_once_watching)
    creator.start()
    began = time.monotonic()
    watcher = Watch()
    for event in watcher.stream(
        core.list_namespaced_config_map, namespace, resource_version=version, timeout_seconds=30
    ):
        if event["object"].metadata.name == "kube-root-ca.crt":
            continue  # published by kube-controller-manager on its own schedule
        assert (event["type"], event["object"].metadata.name) == ("ADDED", "c")
        watcher.stop()
    creator.join()
    # A buffering proxy would deliver the event only when the 30 s watch ends.
    assert time.monotonic() - began < 10


def test_watch_streams_are_cut(fault_proxy, namespace):
    fault_proxy.cut_watches_every = 0.5
    core = core_via(fault_proxy)
    version = list_version(core, namespace)
    began = time.monotonic()
    events = list(
        Watch().stream(
            core.list_namespaced_config_map, namespace, resource_version=version, timeout_seconds=30
        )
    )
    # kube-controller-manager publishes the namespace's root CA ConfigMap on its own
    # schedule (later under load); any other object would be a stray event.
    assert [e for e in events if e["object"].metadata.name != "kube-root-ca.crt"] == []
    assert time.monotonic() - began < 10  # ended by the cut, not by the 30 s timeout
    assert fault_proxy.stats().watches_cut == 1


def test_abruptly_cut_watch_raises_a_protocol_error(fault_proxy, namespace):
    with fault_proxy.injecting(cut_watches_every=0.5, cut_watches_abruptly=True):
        core = core_via(fault_proxy)
        with pytest.raises(urllib3.exceptions.ProtocolError):
            for _event in Watch().stream(
                core.list_namespaced_config_map, namespace, timeout_seconds=30
            ):
                pass
    assert fault_proxy.stats().watches_cut == 1


def test_gone_next_watch_arrives_as_410(fault_proxy, namespace):
    core = core_via(fault_proxy)
    fault_proxy.gone_next_watch()
    with pytest.raises(k8s.ApiException) as gone:
        for _event in Watch().stream(core.list_namespaced_config_map, namespace, timeout_seconds=5):
            pass
    assert gone.value.status == 410
    assert "Expired" in str(gone.value.reason)
    # Only the next watch: the one after goes through to the apiserver again.
    for _event in Watch().stream(core.list_namespaced_config_map, namespace, timeout_seconds=1):
        pass
    stats = fault_proxy.stats()
    assert stats.count(verb="watch", injected=True) == 1
    assert stats.count(verb="watch", injected=False, status=200) == 1


def test_gone_twice_defeats_the_clients_single_retry(fault_proxy, namespace):
    core = core_via(fault_proxy)
    version = list_version(core, namespace)
    fault_proxy.gone_next_watch(count=2)
    with pytest.raises(k8s.ApiException) as gone:
        for _event in Watch().stream(
            core.list_namespaced_config_map, namespace, resource_version=version
        ):
            pass
    assert gone.value.status == 410
    assert fault_proxy.stats().count(verb="watch", injected=True) == 2
