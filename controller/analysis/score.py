"""Score a step's compare metrics together, as Kayenta scores a canary. Pure.

One metric that differs a little is not always a reason to roll back, and ten metrics
judged each at 98% confidence give a false alarm far more often than 2% of the time.
With ``score`` on an AnalysisTemplate its compare metrics are decided together: each
counts its ``compare.weight``; the score is the weight of those that passed, in percent
of the weight of all of them.

- **Pending** while any of them is still measuring;
- **NoData** when any of them is Inconclusive (too few samples) or could not be
  measured (Error): missing evidence is never scored as a pass, nor as a fail;
- otherwise **Pass** at or above ``pass``, **Fail** below ``marginal``, **Marginal** in
  between.

What an outcome does to the run is ``controller.analysis.run``'s: Pass and Fail decide
it, NoData makes it Inconclusive (the rollout pauses), and Marginal extends the run once
(its compare metrics measure again, so the next verdict rests on the longer window) and
then makes it Inconclusive: a person decides.

Worked example: latency (weight 3) failed, errors (1) and saturation (1) passed: the
score is 100 x 2 / 5 = 40, a Fail at the default thresholds (pass 95, marginal 75).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Outcome = Literal["Pass", "Marginal", "Fail", "Pending", "NoData"]


@dataclass(frozen=True)
class Scored:
    """One compare metric as the score sees it: its weight and its phase."""

    name: str
    weight: float
    phase: str


@dataclass(frozen=True)
class ScoreResult:
    outcome: Outcome
    value: float | None
    """0-100 once every metric is decided with data; None before."""
    message: str


def score(metrics: Sequence[Scored], *, pass_at: float, marginal_at: float) -> ScoreResult:
    """The score of ``metrics`` and its outcome; see the module docstring.

    >>> m = [Scored("latency", 3, "Failed"), Scored("errors", 1, "Successful"),
    ...      Scored("saturation", 1, "Successful")]
    >>> score(m, pass_at=95, marginal_at=75).message
    'score 40 (Fail: below marginal 75): passed errors, saturation; failed latency'
    >>> score(m[1:], pass_at=95, marginal_at=75).outcome
    'Pass'
    """
    running = [m.name for m in metrics if m.phase in ("Running", "Pending")]
    if running:
        return ScoreResult("Pending", None, f"score pending: {', '.join(running)} measuring")
    missing = [m.name for m in metrics if m.phase in ("Inconclusive", "Error")]
    if missing:
        return ScoreResult(
            "NoData",
            None,
            f"no score: {', '.join(missing)} without a verdict (too few samples or no "
            "answer); missing evidence is never scored",
        )
    total = math.fsum(m.weight for m in metrics)
    if not metrics or total <= 0:
        return ScoreResult("NoData", None, "no score: no compare metric to weigh")
    passed = [m for m in metrics if m.phase == "Successful"]
    failed = [m for m in metrics if m.phase != "Successful"]
    # All passed is exactly 100 (a float sum of weights divided by itself may not be).
    value = 100.0 if not failed else min(100.0, 100.0 * math.fsum(m.weight for m in passed) / total)
    if value >= pass_at:
        outcome: Outcome = "Pass"
        why = f"at or above pass {_number(pass_at)}"
    elif value >= marginal_at:
        outcome = "Marginal"
        why = f"below pass {_number(pass_at)}, at or above marginal {_number(marginal_at)}"
    else:
        outcome = "Fail"
        why = f"below marginal {_number(marginal_at)}"
    parts = []
    if passed:
        parts.append("passed " + ", ".join(m.name for m in passed))
    if failed:
        parts.append("failed " + ", ".join(m.name for m in failed))
    return ScoreResult(
        outcome, value, f"score {_number(value)} ({outcome}: {why}): " + "; ".join(parts)
    )


def _number(value: float) -> str:
    return f"{value:.0f}" if value == round(value) else f"{value:.1f}"
