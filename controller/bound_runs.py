"""The metrics of each analysis run, resolved once per reconcile pass.

The reconciler makes one ``BoundRuns`` per pass and asks it twice: before planning, to
measure the runs that are due (``controller.reconciler.Reconciler._measure``), and after,
to compute when the next measurement is due (``_requeue_after``). What a run measures
comes from its key (``strategies.runkeys``): a hook run's Jobs become job metrics, any
other run's AnalysisTemplates are resolved with their args and their alert rules read
and scoped to the run's revision. That resolution (and the alert rules' ConfigMap read)
happens once per run and pass, whichever of the two asks first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from controller.analysis.run import AnalysisEngine, BoundMetric
from controller.analysis.templating import QueryContext, TemplateError
from controller.api import AnalysisTemplate, Rollout, RolloutStatus
from controller.api.analysis import Metric, Provider
from controller.api.status import AnalysisRunStatus
from strategies.runkeys import RunKey, analysis_ref, hooks_of


@dataclass(frozen=True)
class BoundRun:
    """What one run measures this pass; ``problem`` when its templates cannot be used."""

    key: RunKey
    metrics: Sequence[BoundMetric] = ()
    problem: str = ""


class BoundRuns:
    """Per pass: run (key, revision) -> its ``BoundRun``, resolved on first use."""

    def __init__(
        self,
        engine: AnalysisEngine,
        rollout: Rollout,
        templates: Mapping[str, AnalysisTemplate],
    ) -> None:
        self.engine = engine
        self.rollout = rollout
        self.templates = templates
        self._bound: dict[tuple[str, str], BoundRun | None] = {}

    def get(self, run: AnalysisRunStatus, status: RolloutStatus) -> BoundRun | None:
        """The run's metrics; None when its key is unknown or the spec no longer names it."""
        slot = (run.key, run.revision)
        if slot not in self._bound:
            self._bound[slot] = self._bind(run, status)
        return self._bound[slot]

    def _bind(self, run: AnalysisRunStatus, status: RolloutStatus) -> BoundRun | None:
        try:
            key = RunKey.parse(run.key)
        except ValueError:
            return None  # written by a newer controller: not ours to measure
        if key.is_hook:
            metrics = hook_metrics(self.rollout, key)
            return BoundRun(key, metrics) if metrics else None
        ref = analysis_ref(self.rollout, key)
        if ref is None:
            return None
        try:
            metrics = self.engine.bind(
                self.templates,
                ref,
                revision=run.revision,
                context=query_context(self.rollout, status, run),
            )
        except TemplateError as exc:
            return BoundRun(key, problem=str(exc))
        return BoundRun(key, metrics)


def query_context(rollout: Rollout, status: RolloutStatus, run: AnalysisRunStatus) -> QueryContext:
    """What a run's queries and checks are about: its revision against stable."""
    return QueryContext(
        canary_hash=run.revision,
        stable_hash=status.stable_revision,
        rollout_name=rollout.metadata.name,
        rollout_namespace=rollout.metadata.namespace,
    )


def hook_metrics(rollout: Rollout, key: RunKey) -> list[BoundMetric]:
    """The Jobs a hook run stands for, as job metrics ([] when the spec has none)."""
    return [
        BoundMetric(
            metric=Metric(name=hook.name, provider=Provider(job=hook.job), count=1),
            template=str(key),
            args={},
        )
        for hook in hooks_of(rollout, key)
    ]
