"""Small helpers shared by the operator tests: a fake clock and waiting on conditions."""

from __future__ import annotations

import threading
from typing import Any


class FakeClock:
    """A monotonic clock that moves only when a test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


def core_api(api_client: object) -> Any:
    """CoreV1Api typed as Any: tests pass plain dict bodies, which its stubs reject."""
    from kubernetes import client as k8s

    return k8s.CoreV1Api(api_client)


def custom_api(api_client: object) -> Any:
    from kubernetes import client as k8s

    return k8s.CustomObjectsApi(api_client)
