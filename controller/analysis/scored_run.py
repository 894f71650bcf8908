"""A run's phase when templates score their compare metrics (``controller.analysis.score``).

Called by the measurement loop (``controller.analysis.run``) after each pass's
measurements. Without a ``score`` the run's phase is its worst metric's; with one, the
compare metrics of that template stand together as one verdict (the score's outcome)
beside the other metrics, and the run's phase is the worst of those:

- Pass: Successful; Fail: Failed (the rollout rolls back with the score as evidence);
  Pending: Running; NoData: Inconclusive (the rollout pauses);
- Marginal, the first time: the compare metrics are reset to Running (their
  measurements kept) and the run is marked ``extended``: they measure again at their
  interval, on the samples since the run started, so the step lasts longer and the
  next verdict rests on more evidence; Marginal again: Inconclusive, a person decides
  (``deployctl promote`` or ``abort``).

Pure: status in, status out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from controller.analysis.score import Scored, score
from controller.api.analysis import Score
from controller.api.status import AnalysisRunStatus, MetricResult, Verdict
from controller.limits import truncate

_RANK: Mapping[str, int] = {
    "Failed": 5,
    "Inconclusive": 4,
    "Error": 3,
    "Running": 2,
    "Pending": 2,
    "Successful": 1,
}
_PHASE: Mapping[str, Verdict] = {
    "Pass": "Successful",
    "Fail": "Failed",
    "Pending": "Running",
    "NoData": "Inconclusive",
}


@dataclass(frozen=True)
class ScoreGroup:
    """One template's compare metrics (name -> weight) and its thresholds."""

    template: str
    thresholds: Score
    weights: Mapping[str, float]


def apply_scores(run: AnalysisRunStatus, groups: Sequence[ScoreGroup]) -> AnalysisRunStatus:
    """``run`` with its phase, message and score decided as the module docstring says."""
    if not groups:
        return run
    results = {r.name: r for r in run.metrics}
    scored_names: set[str] = set()
    verdicts: list[tuple[Verdict, str]] = []
    values: list[float] = []
    extend: set[str] = set()
    for group in groups:
        metrics = [
            Scored(name, weight, results[name].phase if name in results else "Running")
            for name, weight in group.weights.items()
        ]
        scored_names.update(group.weights)
        result = score(
            metrics, pass_at=group.thresholds.pass_, marginal_at=group.thresholds.marginal
        )
        if result.value is not None:
            values.append(result.value)
        message = f"{group.template}: {result.message}"
        if result.outcome != "Marginal":
            verdicts.append((_PHASE[result.outcome], message))
        elif not run.extended:
            extend.update(group.weights)
            verdicts.append(("Running", f"{message}; the step is extended once"))
        else:
            verdicts.append(
                (
                    "Inconclusive",
                    f"{message}; marginal again after the extension: a person decides "
                    "(deployctl promote or abort)",
                )
            )
    metrics_now = [_reset(r) if r.name in extend else r for r in run.metrics]
    others = [(r.phase, r.message) for r in metrics_now if r.name not in scored_names]
    phase, message = max([*others, *verdicts], key=lambda pm: _RANK.get(pm[0], 2))
    if phase == "Successful":
        message = f"all {len(others) + len(verdicts)} verdict(s) successful; " + "; ".join(
            m for _, m in verdicts
        )
    elif phase == "Running":
        message = "; ".join(m for p, m in verdicts if extend and p == "Running")
    return run.model_copy(
        update={
            "metrics": metrics_now,
            "phase": phase,
            "message": truncate(message),
            "score": min(values) if values else run.score,
            "extended": run.extended or bool(extend),
        }
    )


def _reset(result: MetricResult) -> MetricResult:
    """A compare metric measuring again after a marginal score: its counts start over,
    its measurements (the evidence so far) stay."""
    return result.model_copy(
        update={"phase": "Running", "successful": 0, "failed": 0, "inconclusive": 0}
    )
