"""The work queue between the informers and the reconcile workers.

Informer handlers ``add()`` keys (``namespace/name``); N worker threads loop on
``get()`` → reconcile → ``done()``. The reconciler calls ``add_after()`` for timed steps
(a pause's end, the next analysis interval), ``add_rate_limited()`` after an error and
``forget()`` after a success. The semantics are client-go's ``workqueue``:

- A key is queued at most once (``dirty``), however often it is added.
- A key being processed is never handed to a second worker; added again meanwhile, it is
  queued once more when ``done()`` is called, so the latest state is always reconciled.
- ``add_after``: the key becomes ready at a deadline; an earlier deadline for the same
  key wins over a later one (a pause ending at 10:02 is not pushed back by a 10:05 one).
- ``add_rate_limited``: per-key exponential backoff, ``base * 2**failures`` capped at
  ``cap``; ``forget()`` resets the count.

``admit`` (with ``--shards``) keeps out the keys of shards this replica does not own; a
key whose shard is lost while it waits is dropped by the worker, which asks again.

One departure from client-go: after ``shutdown()`` no queued key is handed out any more,
only in-flight ones finish. Nothing is lost by that: the state is in the cluster and the
next leader lists everything anyway.

Deadlines use the injectable ``now`` clock so tests drive time without sleeping;
``get(timeout)`` waits in real time (a fake clock never advances by itself: call
``wake()`` after advancing one while a worker is blocked in ``get()``).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable

from controller.metrics import QUEUE_ADDS, QUEUE_DEPTH, QUEUE_RETRIES, QUEUE_WAIT, QUEUE_WAITING

DEFAULT_BASE_DELAY = 0.05
DEFAULT_MAX_DELAY = 60.0


class WorkQueue:
    """De-duplicated keys, delayed and rate-limited requeues, one worker per key."""

    def __init__(
        self,
        name: str = "rollouts",
        *,
        base_delay: float = DEFAULT_BASE_DELAY,
        max_delay: float = DEFAULT_MAX_DELAY,
        now: Callable[[], float] = time.monotonic,
        admit: Callable[[str], bool] | None = None,
    ) -> None:
        if base_delay <= 0 or max_delay < base_delay:
            raise ValueError("need 0 < base_delay <= max_delay")
        self.name = name
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._now = now
        # Keys this queue takes at all (the shards this replica owns); None: every key.
        self._admit = admit
        self._cond = threading.Condition()
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        # When each key in _queue became ready, for the time it waits for a worker.
        self._ready_since: dict[str, float] = {}
        # Delayed keys: the dict holds each key's current deadline, the heap orders them;
        # heap entries whose deadline no longer matches the dict are stale and skipped.
        self._waiting: dict[str, float] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._failures: dict[str, int] = {}
        self._shutting_down = False
        self._draining = 0  # shutdown(drain=True) calls waiting for in-flight keys
        self._depth = QUEUE_DEPTH.labels(queue=name)
        self._waiting_gauge = QUEUE_WAITING.labels(queue=name)
        self._adds = QUEUE_ADDS.labels(queue=name)
        self._retries = QUEUE_RETRIES.labels(queue=name)
        self._wait = QUEUE_WAIT.labels(queue=name)

    # ------------------------------------------------------------------ producers

    def add(self, key: str) -> None:
        """Queue ``key`` now (no-op if already queued, after shutdown, or re-queued later)."""
        with self._cond:
            self._add_locked(key)

    def add_after(self, key: str, seconds: float) -> None:
        """Queue ``key`` once ``seconds`` have passed; an earlier pending deadline wins."""
        if seconds <= 0:
            self.add(key)
            return
        with self._cond:
            if self._shutting_down or (self._admit is not None and not self._admit(key)):
                return
            deadline = self._now() + seconds
            current = self._waiting.get(key)
            if current is not None and current <= deadline:
                return
            self._waiting[key] = deadline
            heapq.heappush(self._heap, (deadline, next(self._seq), key))
            self._update_gauges()
            # A worker blocked in get() may need to wake earlier than it planned.
            self._cond.notify()

    def add_rate_limited(self, key: str) -> float:
        """Requeue ``key`` after its per-key backoff; returns the delay chosen."""
        with self._cond:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
        # 2**failures overflows to huge floats long before it matters; clamp the exponent.
        delay = min(self.base_delay * (2.0 ** min(failures, 62)), self.max_delay)
        self._retries.inc()
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        """Reset ``key``'s backoff (call after a successful reconcile)."""
        with self._cond:
            self._failures.pop(key, None)

    def num_requeues(self, key: str) -> int:
        with self._cond:
            return self._failures.get(key, 0)

    # ------------------------------------------------------------------ consumers

    def get(self, timeout: float | None = None) -> str | None:
        """The next ready key, or None on timeout (real seconds) or after shutdown.

        The caller owns the key until it calls ``done(key)``.
        """
        end = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._shutting_down:
                    return None
                self._promote_due_locked()
                if self._queue:
                    key = self._queue.popleft()
                    ready_since = self._ready_since.pop(key, None)
                    if ready_since is not None:
                        self._wait.observe(max(0.0, self._now() - ready_since))
                    self._processing.add(key)
                    self._dirty.discard(key)
                    self._update_gauges()
                    return key
                wait = self._next_wait_locked()
                if end is not None:
                    remaining = end - time.monotonic()
                    if remaining <= 0:
                        return None
                    wait = remaining if wait is None else min(wait, remaining)
                self._cond.wait(wait)

    def done(self, key: str) -> None:
        """Mark ``key`` processed; if it was added meanwhile, queue it again."""
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty and not self._shutting_down:
                self._queue.append(key)
                self._ready_since[key] = self._now()
                self._cond.notify()
            self._update_gauges()
            if self._draining:
                # shutdown(drain=True) waits for the processing set to empty. Only then:
                # waking every idle worker on each done() was a thundering herd.
                self._cond.notify_all()

    # ------------------------------------------------------------------ lifecycle

    def shutdown(self, *, drain: bool = True, timeout: float | None = None) -> bool:
        """Stop handing out keys; with ``drain``, wait until in-flight keys are done.

        Returns True when nothing is in flight any more (False: the timeout expired).
        """
        end = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._shutting_down = True
            self._cond.notify_all()
            if not drain:
                return not self._processing
            self._draining += 1
            try:
                while self._processing:
                    remaining = None if end is None else end - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._cond.wait(remaining)
                return True
            finally:
                self._draining -= 1

    def wake(self) -> None:
        """Make blocked ``get()`` calls re-check deadlines (after advancing a fake clock)."""
        with self._cond:
            self._cond.notify_all()

    @property
    def shutting_down(self) -> bool:
        with self._cond:
            return self._shutting_down

    def __len__(self) -> int:
        """Keys ready to be handed out (not counting delayed or in-flight ones)."""
        with self._cond:
            self._promote_due_locked()
            return len(self._queue)

    def waiting(self) -> dict[str, float]:
        """Delayed keys and their deadlines (on the queue's clock), for tests and debugging."""
        with self._cond:
            return dict(self._waiting)

    def processing(self) -> frozenset[str]:
        with self._cond:
            return frozenset(self._processing)

    # ------------------------------------------------------------------ internals

    def _add_locked(self, key: str) -> None:
        if self._shutting_down or (self._admit is not None and not self._admit(key)):
            return
        self._adds.inc()
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # done() queues it again, so no second worker ever gets it
        self._queue.append(key)
        self._ready_since[key] = self._now()
        self._update_gauges()
        self._cond.notify()

    def _promote_due_locked(self) -> None:
        now = self._now()
        while self._heap and self._heap[0][0] <= now:
            deadline, _, key = heapq.heappop(self._heap)
            if self._waiting.get(key) != deadline:
                continue  # superseded by an earlier deadline
            del self._waiting[key]
            self._add_locked(key)
        self._update_gauges()

    def _next_wait_locked(self) -> float | None:
        while self._heap and self._waiting.get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        if not self._heap:
            return None
        return max(0.0, self._heap[0][0] - self._now())

    def _update_gauges(self) -> None:
        self._depth.set(len(self._queue))
        self._waiting_gauge.set(len(self._waiting))
