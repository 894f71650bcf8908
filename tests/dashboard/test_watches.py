"""Fan-out of watch events to live pages: by topic, coalesced, bounded, released on close.

The informers here are recording doubles of our own cache seam (``Informer``'s
``add_handler``/``list``/``keys``); the real watches are exercised against the sandbox
in ``test_server.py`` and the browser tests.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from controller.dashboard.watches import (
    LIST_TOPIC,
    Borrowed,
    Closed,
    TooManySubscribers,
    Watches,
    rollout_topic,
)


class FakeInformer:
    def __init__(self, keys: tuple[str, ...] = ()) -> None:
        self.handlers: list[Any] = []
        self._keys = keys

    def add_handler(self, handler: Any) -> None:
        self.handlers.append(handler)

    def fire(self, event_type: str, obj: dict[str, Any]) -> None:
        for handler in self.handlers:
            handler(event_type, obj)

    def keys(self, namespace: str | None = None, **_: Any) -> tuple[str, ...]:
        return tuple(k for k in self._keys if namespace is None or k.startswith(f"{namespace}/"))

    def has_synced(self) -> bool:
        return True


def rollout(ns: str, name: str) -> dict[str, Any]:
    return {"metadata": {"namespace": ns, "name": name}}


@pytest.fixture
def informers() -> Borrowed:
    return Borrowed(
        rollouts=FakeInformer(("shop/a", "shop/b", "other/c")),  # type: ignore[arg-type]
        replicasets=FakeInformer(),  # type: ignore[arg-type]
        jobs=FakeInformer(),  # type: ignore[arg-type]
        templates=FakeInformer(),  # type: ignore[arg-type]
    )


@pytest.fixture
def watches(informers: Borrowed) -> Watches:
    # The Events informer is built but never started: no request is sent.
    return Watches(object(), namespace=None, borrowed=informers, max_subscriptions=3)  # type: ignore[arg-type]


def test_events_reach_the_pages_of_their_topic_only(watches: Watches, informers: Any) -> None:
    listing = watches.subscribe([LIST_TOPIC])
    page_a = watches.subscribe([rollout_topic("shop", "a")])
    informers.rollouts.fire("MODIFIED", rollout("shop", "a"))
    assert listing.wait(0) == {LIST_TOPIC}
    assert page_a.wait(0) == {rollout_topic("shop", "a")}
    informers.replicasets.fire(
        "MODIFIED",
        {"metadata": {"namespace": "shop", "name": "b-1", "labels": {"deployctl.io/rollout": "b"}}},
    )
    assert listing.wait(0) == set() and page_a.wait(0) == set()
    # A template change concerns every rollout of its namespace.
    informers.templates.fire("MODIFIED", {"metadata": {"namespace": "shop", "name": "t"}})
    assert page_a.wait(0) == {rollout_topic("shop", "a")}
    assert listing.wait(0) == set()


def test_a_stalled_page_costs_one_entry_per_topic_however_many_updates(
    watches: Watches, informers: Any
) -> None:
    page = watches.subscribe([rollout_topic("shop", "a"), LIST_TOPIC])
    for _ in range(10_000):
        informers.rollouts.fire("MODIFIED", rollout("shop", "a"))
    assert len(page._changed) == 2
    assert page.wait(0) == {LIST_TOPIC, rollout_topic("shop", "a")}
    assert page.wait(0) == set()


def test_subscriptions_are_capped_and_released(watches: Watches) -> None:
    pages = [watches.subscribe([LIST_TOPIC]) for _ in range(3)]
    with pytest.raises(TooManySubscribers):
        watches.subscribe([LIST_TOPIC])
    pages[0].close()
    pages[0].close()  # twice is harmless
    assert watches.subscription_count == 2
    watches.subscribe([LIST_TOPIC])
    assert watches.subscription_count == 3


def test_a_waiting_page_wakes_on_change_and_on_stop(watches: Watches, informers: Any) -> None:
    page = watches.subscribe([LIST_TOPIC])
    woke: list[Any] = []
    first = threading.Event()

    def wait() -> None:
        try:
            while True:
                woke.append(page.wait(30))
                first.set()
        except Closed:
            woke.append("closed")

    reader = threading.Thread(target=wait)
    reader.start()
    informers.rollouts.fire("ADDED", rollout("other", "c"))
    assert first.wait(10), "the waiting page did not wake on a change"
    watches.stop()
    reader.join(10)
    assert not reader.is_alive()
    assert woke[-1] == "closed" and {LIST_TOPIC} in woke
    assert watches.subscription_count == 0
    with pytest.raises(Closed):
        watches.subscribe([LIST_TOPIC])
