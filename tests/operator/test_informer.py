"""Informers against the sandbox apiserver: events, cut streams, 410 Gone re-lists."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
from kubernetes import client as k8s

from controller.informer import ADDED, DELETED, MODIFIED, Backoff, Informer
from controller.kube import KindRef, Kube, RetryPolicy
from controller.metrics import REGISTRY
from sandbox.faultproxy import FaultProxy
from tests.operator.helpers import core_api
from tests.waiting import wait_until

CONFIGMAPS = KindRef("", "v1", "configmaps", "ConfigMap")


def fast() -> Backoff:
    return Backoff(initial=0.05, maximum=0.5)


class Recorder:
    """An on_event handler that records (type, name, resourceVersion)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, event_type: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        with self._lock:
            self.events.append((event_type, meta["name"], meta["resourceVersion"]))

    def seen(self, event_type: str, name: str) -> bool:
        with self._lock:
            return any(e[0] == event_type and e[1] == name for e in self.events)

    def of(self, event_type: str) -> list[str]:
        with self._lock:
            return [e[1] for e in self.events if e[0] == event_type]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def started() -> Iterator[list[Informer]]:
    informers: list[Informer] = []
    yield informers
    for informer in informers:
        informer.stop()


def relists() -> float:
    return (
        REGISTRY.get_sample_value("deployctl_informer_relists_total", {"resource": "configmaps"})
        or 0.0
    )


def server_names(kube_api: k8s.ApiClient, namespace: str) -> set[str]:
    items = core_api(kube_api).list_namespaced_config_map(namespace).items
    return {item.metadata.name for item in items}


def cache_names(informer: Informer) -> set[str]:
    return {obj["metadata"]["name"] for obj in informer.list()}


def test_sees_adds_updates_and_deletes(
    control_plane: Any,
    kube_api: k8s.ApiClient,
    namespace: str,
    recorder: Recorder,
    started: list[Informer],
) -> None:
    core = core_api(kube_api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "before"}})
    informer = Informer(
        Kube(control_plane.api_client()),
        CONFIGMAPS,
        namespace=namespace,
        on_event=recorder,
        backoff=fast(),
    )
    started.append(informer.start())
    assert informer.wait_for_sync(10)
    assert informer.has_synced()
    assert recorder.seen(ADDED, "before")

    core.create_namespaced_config_map(namespace, {"metadata": {"name": "cm"}, "data": {"v": "1"}})
    wait_until(lambda: recorder.seen(ADDED, "cm"), timeout=10, what="ADDED cm")
    core.patch_namespaced_config_map("cm", namespace, {"data": {"v": "2"}})
    wait_until(lambda: recorder.seen(MODIFIED, "cm"), timeout=10, what="MODIFIED cm")
    cached = informer.get(namespace, "cm")
    assert cached is not None and cached["data"] == {"v": "2"}
    core.delete_namespaced_config_map("cm", namespace)
    wait_until(lambda: recorder.seen(DELETED, "cm"), timeout=10, what="DELETED cm")
    assert informer.get(namespace, "cm") is None
    assert informer.resource_version.isdigit()


def test_cache_hands_out_copies(
    control_plane: Any, kube_api: k8s.ApiClient, namespace: str, started: list[Informer]
) -> None:
    core_api(kube_api).create_namespaced_config_map(
        namespace, {"metadata": {"name": "cm"}, "data": {"v": "1"}}
    )
    informer = Informer(Kube(control_plane.api_client()), CONFIGMAPS, namespace=namespace)
    started.append(informer.start())
    assert informer.wait_for_sync(10)
    mine = informer.get(namespace, "cm")
    assert mine is not None
    mine["data"]["v"] = "mutated"
    informer.list()[0]["data"] = {}
    again = informer.get(namespace, "cm")
    assert again is not None and again["data"] == {"v": "1"}


def test_resumes_after_cut_streams_without_relisting(
    fault_proxy: FaultProxy,
    kube_api: k8s.ApiClient,
    namespace: str,
    recorder: Recorder,
    started: list[Informer],
) -> None:
    fault_proxy.cut_watches_every = 0.5
    informer = Informer(
        Kube(fault_proxy.api_client()),
        CONFIGMAPS,
        namespace=namespace,
        on_event=recorder,
        backoff=fast(),
    )
    started.append(informer.start())
    assert informer.wait_for_sync(10)
    lists_before = relists()
    core = core_api(kube_api)
    for index in range(6):
        name = f"cm-{index}"
        core.create_namespaced_config_map(namespace, {"metadata": {"name": name}})
        # Spread the writes over several cut streams.
        wait_until(partial(recorder.seen, ADDED, name), timeout=10, what=f"ADDED {name}")
    wait_until(lambda: fault_proxy.stats().watches_cut >= 3, timeout=10, what="three cut watches")
    assert cache_names(informer) == server_names(kube_api, namespace)
    assert relists() == lists_before, "a cut stream resumes from the last resourceVersion"
    assert fault_proxy.stats().count(verb="list") == 1
    added = recorder.of(ADDED)
    assert len(added) == len(set(added)), f"duplicate ADDED events: {added}"


def test_abrupt_connection_drops_reconnect(
    fault_proxy: FaultProxy,
    kube_api: k8s.ApiClient,
    namespace: str,
    recorder: Recorder,
    started: list[Informer],
) -> None:
    with fault_proxy.injecting(cut_watches_every=0.5, cut_watches_abruptly=True):
        informer = Informer(
            Kube(fault_proxy.api_client()),
            CONFIGMAPS,
            namespace=namespace,
            on_event=recorder,
            backoff=fast(),
        )
        started.append(informer.start())
        assert informer.wait_for_sync(10)
        wait_until(lambda: fault_proxy.stats().watches_cut >= 2, timeout=10, what="two cut watches")
        core_api(kube_api).create_namespaced_config_map(namespace, {"metadata": {"name": "late"}})
        wait_until(lambda: recorder.seen(ADDED, "late"), timeout=10, what="ADDED late")


def test_gone_relists_and_emits_what_was_missed(
    fault_proxy: FaultProxy,
    kube_api: k8s.ApiClient,
    namespace: str,
    recorder: Recorder,
    started: list[Informer],
) -> None:
    core = core_api(kube_api)
    for name in ("keep", "change", "vanish"):
        core.create_namespaced_config_map(
            namespace, {"metadata": {"name": name}, "data": {"v": "1"}}
        )
    informer = Informer(
        Kube(fault_proxy.api_client(), retry=RetryPolicy(attempts=1)),
        CONFIGMAPS,
        namespace=namespace,
        on_event=recorder,
        watch_timeout=1,  # the open watch ends within a second, then must re-watch
        backoff=fast(),
    )
    started.append(informer.start())
    assert informer.wait_for_sync(10)
    lists_before = relists()
    # Blind the informer: every new request fails, so it misses the next changes.
    fault_proxy.rate_429 = 1.0
    wait_until(
        lambda: fault_proxy.stats().count(verb="watch", injected=True) >= 1,
        timeout=10,
        what="the informer to lose its watch",
    )
    core.delete_namespaced_config_map("vanish", namespace)
    core.patch_namespaced_config_map("change", namespace, {"data": {"v": "2"}})
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "new"}})
    recorder.events.clear()
    # The next watch is told 410 Expired, as after an etcd compaction.
    fault_proxy.gone_next_watch()
    fault_proxy.rate_429 = 0.0
    wait_until(lambda: relists() > lists_before, timeout=10, what="a re-list after 410")
    wait_until(lambda: recorder.seen(DELETED, "vanish"), timeout=10, what="synthetic DELETED")
    assert recorder.seen(MODIFIED, "change")
    assert recorder.seen(ADDED, "new")
    assert not any(name == "keep" for _, name, _ in recorder.events), "unchanged: no event"
    assert cache_names(informer) == server_names(kube_api, namespace)
    changed = informer.get(namespace, "change")
    assert changed is not None and changed["data"] == {"v": "2"}


@pytest.mark.slow
def test_real_compaction_410_relists_without_loss(
    fault_proxy: FaultProxy,
    control_plane: Any,
    kube_api: k8s.ApiClient,
    namespace: str,
    recorder: Recorder,
    started: list[Informer],
) -> None:
    """No injected 410: the informer is blinded until etcd compacts its resourceVersion."""
    from controller.kube import Gone

    core = core_api(kube_api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "old"}})
    informer = Informer(
        Kube(fault_proxy.api_client(), retry=RetryPolicy(attempts=1)),
        CONFIGMAPS,
        namespace=namespace,
        on_event=recorder,
        watch_timeout=1,
        backoff=fast(),
    )
    started.append(informer.start())
    assert informer.wait_for_sync(10)
    lists_before = relists()
    fault_proxy.rate_429 = 1.0
    wait_until(
        lambda: fault_proxy.stats().count(verb="watch", injected=True) >= 1,
        timeout=10,
        what="the informer to lose its watch",
    )
    stale = informer.resource_version
    core.delete_namespaced_config_map("old", namespace)
    direct = Kube(control_plane.api_client())

    def compacted() -> bool:
        core.create_namespaced_config_map(
            namespace, {"metadata": {"generateName": "churn-"}}
        )  # revisions for etcd to compact past
        try:
            for _ in direct.watch_objects(
                CONFIGMAPS, namespace, resource_version=stale, timeout_seconds=1
            ):
                pass
        except Gone:
            return True
        return False

    wait_until(compacted, timeout=90, what="etcd to compact the informer's resourceVersion")
    fault_proxy.rate_429 = 0.0
    wait_until(lambda: relists() > lists_before, timeout=20, what="a re-list after a real 410")
    wait_until(lambda: recorder.seen(DELETED, "old"), timeout=10, what="synthetic DELETED old")
    assert cache_names(informer) == server_names(kube_api, namespace)
    added = recorder.of(ADDED)
    assert len(added) == len(set(added)), f"duplicate ADDED events: {added}"


def test_stop_closes_an_open_watch_promptly(
    control_plane: Any, namespace: str, started: list[Informer]
) -> None:
    informer = Informer(Kube(control_plane.api_client()), CONFIGMAPS, namespace=namespace)
    informer.start()
    assert informer.wait_for_sync(10)
    wait_until(lambda: informer._stream is not None, timeout=10, what="the watch to open")
    informer.stop(timeout=5)
    assert not any(t.is_alive() for t in informer._threads)
