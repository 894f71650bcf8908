"""WorkQueue semantics: de-duplication, one worker per key, delays, backoff, shutdown."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from controller.metrics import REGISTRY
from controller.queue import WorkQueue
from tests.operator.helpers import FakeClock
from tests.waiting import wait_until


def test_keys_are_deduplicated_and_fifo() -> None:
    queue = WorkQueue("t-dedupe")
    for key in ["a", "b", "a", "c", "b"]:
        queue.add(key)
    assert len(queue) == 3
    assert [queue.get(timeout=0) for _ in range(3)] == ["a", "b", "c"]
    assert queue.get(timeout=0) is None


def test_key_in_flight_is_not_handed_out_again_until_done() -> None:
    queue = WorkQueue("t-inflight")
    queue.add("a")
    assert queue.get(timeout=0) == "a"
    queue.add("a")  # changed while being reconciled
    queue.add("a")
    assert queue.get(timeout=0) is None, "a second worker must not get a key in flight"
    queue.done("a")
    assert queue.get(timeout=0) == "a", "re-added while processing: processed once more"
    queue.done("a")
    assert queue.get(timeout=0) is None


def test_done_without_re_add_does_not_requeue() -> None:
    queue = WorkQueue("t-done")
    queue.add("a")
    assert queue.get(timeout=0) == "a"
    queue.done("a")
    assert queue.get(timeout=0) is None


def test_many_workers_never_process_one_key_concurrently() -> None:
    queue = WorkQueue("t-workers")
    active: Counter[str] = Counter()
    processed: Counter[str] = Counter()
    violations: list[str] = []
    lock = threading.Lock()
    gate = threading.Event()

    def worker() -> None:
        while (key := queue.get(timeout=2)) is not None:
            with lock:
                active[key] += 1
                if active[key] > 1:
                    violations.append(key)
            gate.wait(0.001)  # widen the window in which a second worker could interfere
            with lock:
                active[key] -= 1
                processed[key] += 1
            queue.done(key)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for round_ in range(200):
        for key in ("a", "b", "c"):
            queue.add(key)
        if round_ % 50 == 0:
            wait_until(lambda: len(queue) == 0, timeout=5, what="workers to pick keys")
    wait_until(
        lambda: len(queue) == 0 and not queue.processing(), timeout=10, what="queue to drain"
    )
    queue.shutdown()
    for thread in threads:
        thread.join(5)
    assert violations == []
    assert set(processed) == {"a", "b", "c"}


def test_add_after_waits_for_the_injected_clock() -> None:
    clock = FakeClock()
    queue = WorkQueue("t-after", now=clock)
    queue.add_after("a", 5)
    assert queue.get(timeout=0) is None
    clock.advance(4.9)
    assert queue.get(timeout=0) is None
    clock.advance(0.2)
    assert queue.get(timeout=0) == "a"
    assert queue.waiting() == {}


def test_add_after_earlier_deadline_wins() -> None:
    clock = FakeClock()
    queue = WorkQueue("t-earlier", now=clock)
    queue.add_after("a", 10)
    queue.add_after("a", 2)  # earlier: replaces
    queue.add_after("a", 30)  # later: ignored
    assert queue.waiting() == {"a": clock() + 2}
    clock.advance(2)
    assert queue.get(timeout=0) == "a"
    queue.done("a")
    clock.advance(100)
    assert queue.get(timeout=0) is None, "superseded deadlines must not fire again"


def test_add_after_zero_is_immediate_and_delayed_key_dedupes_with_add() -> None:
    clock = FakeClock()
    queue = WorkQueue("t-zero", now=clock)
    queue.add_after("a", 0)
    assert queue.get(timeout=0) == "a"
    queue.done("a")
    queue.add("b")
    queue.add_after("b", 1)
    clock.advance(1)
    assert queue.get(timeout=0) == "b"
    assert queue.get(timeout=0) is None, "b was still queued when its delay fired"


def test_blocked_get_wakes_when_the_fake_clock_advances() -> None:
    clock = FakeClock()
    queue = WorkQueue("t-wake", now=clock)
    queue.add_after("a", 60)
    got: list[str | None] = []
    thread = threading.Thread(target=lambda: got.append(queue.get(timeout=10)))
    thread.start()
    clock.advance(60)
    queue.wake()
    thread.join(5)
    assert got == ["a"]


def test_delayed_key_with_real_clock_arrives_on_time() -> None:
    queue = WorkQueue("t-real")
    queue.add_after("a", 0.05)
    assert queue.get(timeout=5) == "a"


def test_rate_limited_backoff_grows_exponentially_to_the_cap_and_forget_resets() -> None:
    clock = FakeClock()
    queue = WorkQueue("t-backoff", base_delay=0.05, max_delay=1.0, now=clock)
    delays = []
    for _ in range(7):
        delays.append(queue.add_rate_limited("a"))
        clock.advance(delays[-1])
        assert queue.get(timeout=0) == "a"
        queue.done("a")
    assert delays == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert queue.num_requeues("a") == 7
    queue.forget("a")
    assert queue.num_requeues("a") == 0
    assert queue.add_rate_limited("a") == pytest.approx(0.05)


def test_rate_limited_keys_back_off_independently() -> None:
    queue = WorkQueue("t-perkey", now=FakeClock())
    for _ in range(3):
        queue.add_rate_limited("a")
    assert queue.add_rate_limited("b") == pytest.approx(0.05)
    assert queue.add_rate_limited("a") == pytest.approx(0.4)


def test_default_backoff_cap_is_sixty_seconds() -> None:
    queue = WorkQueue("t-cap", now=FakeClock())
    delays = [queue.add_rate_limited("a") for _ in range(40)]
    assert max(delays) == 60.0
    assert delays[-1] == 60.0


def test_invalid_backoff_settings_are_rejected() -> None:
    with pytest.raises(ValueError):
        WorkQueue("t-invalid", base_delay=0)
    with pytest.raises(ValueError):
        WorkQueue("t-invalid", base_delay=2, max_delay=1)


def test_shutdown_drains_in_flight_keys_and_hands_out_nothing_more() -> None:
    queue = WorkQueue("t-shutdown")
    queue.add("a")
    queue.add("b")
    assert queue.get(timeout=0) == "a"
    drained: list[bool] = []
    stopper = threading.Thread(target=lambda: drained.append(queue.shutdown(timeout=10)))
    stopper.start()
    wait_until(lambda: queue.shutting_down, timeout=5, what="shutdown to begin")
    assert drained == [], "shutdown must wait for the key in flight"
    assert queue.get(timeout=0) is None, "no new work after shutdown"
    queue.add("c")
    queue.done("a")
    stopper.join(5)
    assert drained == [True]
    assert queue.get(timeout=0) is None


def test_shutdown_wakes_blocked_workers() -> None:
    queue = WorkQueue("t-shutdown-wake")
    results: list[str | None] = []
    worker = threading.Thread(target=lambda: results.append(queue.get()))
    worker.start()
    queue.shutdown()
    worker.join(5)
    assert results == [None]


def test_shutdown_timeout_reports_unfinished_work() -> None:
    queue = WorkQueue("t-shutdown-timeout")
    queue.add("a")
    assert queue.get(timeout=0) == "a"
    assert queue.shutdown(timeout=0.05) is False
    queue.done("a")
    assert queue.shutdown(timeout=0) is True


def test_depth_gauge_follows_ready_keys() -> None:
    queue = WorkQueue("t-gauge")

    def depth() -> float | None:
        return REGISTRY.get_sample_value("deployctl_workqueue_depth", {"queue": "t-gauge"})

    queue.add("a")
    queue.add("b")
    assert depth() == 2
    queue.get(timeout=0)
    assert depth() == 1


def test_a_queue_admits_only_the_keys_it_is_told_to() -> None:
    # With shards: keys of shards this replica does not own never enter its queue.
    owned = {"ns/a"}
    clock = FakeClock()
    q = WorkQueue("test-admit", now=clock, admit=lambda key: key in owned)
    q.add("ns/a")
    q.add("ns/b")
    q.add_after("ns/b", 1.0)
    q.add_rate_limited("ns/b")
    clock.advance(120)
    assert len(q) == 1
    assert q.get(timeout=0) == "ns/a"
    q.done("ns/a")
    owned.add("ns/b")
    q.add("ns/b")
    assert q.get(timeout=0) == "ns/b"
