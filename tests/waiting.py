"""Waiting on a condition with a deadline: the one way tests (and the benchmark) wait.

No test sleeps to synchronise; it polls what it waits for and fails, naming it and the
last value seen, when the deadline passes. Deadlines are generous: the machine may be
loaded, and a deadline is a bound, not a speed claim (speed lives in ``make bench``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


@overload
def wait_until(
    check: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.05
) -> T: ...


@overload
def wait_until(
    check: Callable[[], T],
    *,
    timeout: float,
    what: str,
    ok: Callable[[Any], object],
    interval: float = 0.05,
) -> T: ...


def wait_until(
    check: Callable[[], Any],
    *,
    timeout: float,
    what: str,
    ok: Callable[[Any], object] = bool,
    interval: float = 0.05,
) -> Any:
    """Call ``check`` until ``ok`` holds for what it returns (by default: until it returns
    something truthy) and return that; AssertionError naming ``what`` after ``timeout``
    seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if ok(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:g} s waiting for {what}; last: {value!r}"[:4000]
            )
        time.sleep(interval)
