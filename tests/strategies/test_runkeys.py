"""Run keys as values: parse and print round-trip, unknown spellings are refused."""

from __future__ import annotations

import pytest

from strategies.runkeys import BACKGROUND, HOOK_ON_ABORT, PRE_PROMOTION, RunKey, RunKind


@pytest.mark.parametrize(
    "text",
    [
        "background",
        "step-0",
        "step-12",
        "gate-50",
        "prePromotion",
        "postPromotion",
        "hook-preRollout",
        "hook-postPromotion",
        "hook-onAbort",
    ],
)
def test_parse_and_str_round_trip(text: str) -> None:
    assert str(RunKey.parse(text)) == text


@pytest.mark.parametrize(
    "text", ["", "step", "step-", "step-01", "step--1", "gate-x", "hook-later", "canary", "Step-1"]
)
def test_unknown_spellings_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="unknown analysis run key"):
        RunKey.parse(text)


def test_constants_and_builders_agree() -> None:
    assert RunKey.parse("background") == BACKGROUND and BACKGROUND.kind is RunKind.BACKGROUND
    assert RunKey.parse("prePromotion") == PRE_PROMOTION
    assert RunKey.for_hook("onAbort") == HOOK_ON_ABORT and HOOK_ON_ABORT.is_hook
    assert RunKey.step(3) == RunKey.parse("step-3") and RunKey.gate(25).describe() == "gate at 25%"
    with pytest.raises(ValueError):
        RunKey(RunKind.STEP)  # a step needs its index
