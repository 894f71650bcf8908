"""A run's metrics are resolved once per reconcile pass (``controller.bound_runs``): the
measurement and the requeue time both ask, the templates and the alert rules' ConfigMap
are read once. Run keys map to what they stand for; unknown keys are left alone."""

from __future__ import annotations

from controller.analysis.alertrules import AlertRule
from controller.analysis.run import AnalysisEngine
from controller.api import Rollout
from controller.api.status import AnalysisRunStatus, RolloutStatus
from controller.bound_runs import BoundRuns
from tests.analysis.helpers import template

JOB = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "sandbox/shell"}]}}}}


class CountingRules:
    def __init__(self) -> None:
        self.reads = 0

    def rules(self, namespace: str, config_map: str, key: str | None) -> list[AlertRule]:
        self.reads += 1
        return [AlertRule("HighErrorRate", 'rate(x{job="a"}[1m]) > 1', 0.0, "g")]


ROLLOUT = Rollout.model_validate(
    {
        "metadata": {"name": "shop", "namespace": "ns"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "shop"}},
            "template": {
                "metadata": {"labels": {"app": "shop"}},
                "spec": {"containers": [{"name": "app", "image": "shop:2"}]},
            },
            "strategy": {
                "canary": {
                    "steps": [{"setWeight": 10}, {"analysis": {"templates": [{"name": "t"}]}}]
                }
            },
            "hooks": {"preRollout": [{"name": "migrate", "job": JOB}]},
        },
    }
)
TEMPLATES = {"t": template({"name": "alerts", "alertRules": {"configMap": "rules"}})}


def run(key: str) -> AnalysisRunStatus:
    return AnalysisRunStatus(key=key, revision="abc", started_at="2026-03-01T12:00:00Z")


def test_a_run_is_bound_once_per_pass_however_often_it_is_asked() -> None:
    rules = CountingRules()
    runs = BoundRuns(AnalysisEngine(measurer=None, rules=rules), ROLLOUT, TEMPLATES)  # type: ignore[arg-type]
    status = RolloutStatus()
    first = runs.get(run("step-1"), status)
    again = runs.get(run("step-1"), status)
    assert first is again and rules.reads == 1
    assert first is not None and [b.metric.name for b in first.metrics] == ["alerts/HighErrorRate"]
    # A new pass binds afresh: a changed rules file is read again.
    BoundRuns(AnalysisEngine(measurer=None, rules=rules), ROLLOUT, TEMPLATES).get(  # type: ignore[arg-type]
        run("step-1"), status
    )
    assert rules.reads == 2


def test_hook_runs_bind_their_jobs_and_unknown_keys_bind_nothing() -> None:
    runs = BoundRuns(AnalysisEngine(measurer=None), ROLLOUT, TEMPLATES)  # type: ignore[arg-type]
    hook = runs.get(run("hook-preRollout"), RolloutStatus())
    assert hook is not None and hook.key.is_hook
    assert [b.metric.name for b in hook.metrics] == ["migrate"]
    assert runs.get(run("step-7"), RolloutStatus()) is None  # the spec has no such step
    assert runs.get(run("gate-50"), RolloutStatus()) is None  # not a rolling rollout
    assert runs.get(run("someday-9"), RolloutStatus()) is None  # a newer controller's key


def test_templates_that_cannot_be_bound_say_why() -> None:
    runs = BoundRuns(AnalysisEngine(measurer=None), ROLLOUT, {})  # type: ignore[arg-type]
    bound = runs.get(run("step-1"), RolloutStatus())
    assert bound is not None and "unknown AnalysisTemplate 't'" in bound.problem
