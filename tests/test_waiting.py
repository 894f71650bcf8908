"""The tests' one wait helper: returns what it waited for, fails naming it."""

from __future__ import annotations

import itertools

import pytest

from tests.waiting import wait_until


def test_returns_the_first_value_that_holds() -> None:
    counter = itertools.count()
    assert wait_until(lambda: next(counter) >= 3 and "three", timeout=10, what="x", interval=0) == (
        "three"
    )
    values = iter([{"phase": "Progressing"}, {"phase": "Healthy"}])
    found = wait_until(
        lambda: next(values), ok=lambda s: s["phase"] == "Healthy", timeout=10, what="Healthy"
    )
    assert found == {"phase": "Healthy"}


def test_fails_naming_what_it_waited_for_and_the_last_value() -> None:
    with pytest.raises(AssertionError, match=r"waiting for the rollout; last: 'Paused'"):
        wait_until(lambda: "Paused", ok=lambda p: p == "Healthy", timeout=0, what="the rollout")
