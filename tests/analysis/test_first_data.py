"""A metric without data keeps being asked every FIRST_DATA_POLL seconds (not on the next
tick of its interval) while the revision's first series has yet to appear, recording
"no data" once per interval as before, and for FIRST_DATA_WINDOW at most."""

from __future__ import annotations

from controller.analysis.run import (
    FIRST_DATA_POLL,
    FIRST_DATA_WINDOW,
    AnalysisEngine,
    due_metrics,
    next_due,
    start_run,
    waiting_for_first_data,
)
from controller.analysis.values import QueryResult
from controller.api.rollout import AnalysisRef
from controller.api.status import AnalysisRunStatus
from tests.analysis.helpers import T0, at, template
from tests.analysis.test_run import CONTEXT, ScriptedMeasurer, value

SPEC = {
    "name": "error-rate",
    "interval": "2s",
    "inconclusiveLimit": 30,
    "threshold": {"max": 0.05},
    "provider": {"prometheus": {"query": 'x{r="{{canary.hash}}"}'}},
}
TEMPLATE = template(SPEC)
REF = AnalysisRef.model_validate({"templates": [{"name": "http-health"}]})
METRIC = TEMPLATE.spec.metrics[0]
EMPTY = QueryResult("q")


def advance(engine: AnalysisEngine, run: AnalysisRunStatus, seconds: float) -> AnalysisRunStatus:
    return engine.advance(
        run, templates={"http-health": TEMPLATE}, ref=REF, context=CONTEXT, now=at(seconds)
    )


def test_after_a_no_data_record_the_metric_is_polled_and_judged_when_data_appears() -> None:
    measurer = ScriptedMeasurer(iter([EMPTY, EMPTY, EMPTY, value(0.3)]))
    engine = AnalysisEngine(measurer)
    run = advance(engine, start_run(key="k", revision="abc", metrics=[], now=T0), 0)
    assert run.metrics[0].measurements == []  # within the first interval: not recorded
    run = advance(engine, run, 2.0)  # a whole interval without data: recorded
    assert [m.phase for m in run.metrics[0].measurements] == ["Inconclusive"]
    # Asked again half a second later, not at the next tick (4 s) ...
    assert waiting_for_first_data(run, METRIC, now=at(2.5))
    assert next_due(run, [METRIC], now=at(2.1)) == at(2.0 + FIRST_DATA_POLL)
    assert due_metrics(run, [METRIC], now=at(2.5)) == ["error-rate"]
    run = advance(engine, run, 2.5)  # still no data: not recorded again within the interval
    assert len(run.metrics[0].measurements) == 1
    run = advance(engine, run, 3.0)  # ... and judged as soon as the series is there
    assert run.phase == "Failed"
    assert [m.phase for m in run.metrics[0].measurements] == ["Inconclusive", "Failed"]
    assert run.metrics[0].measurements[-1].at.endswith("12:00:03Z")
    assert len(measurer.queries) == 4


def test_no_data_is_still_recorded_once_per_interval_while_polling() -> None:
    measurer = ScriptedMeasurer(iter([EMPTY] * 20))
    engine = AnalysisEngine(measurer)
    run = start_run(key="k", revision="abc", metrics=[], now=T0)
    for tick in range(0, 13):  # every 0.5 s for 6 s
        run = advance(engine, run, tick * FIRST_DATA_POLL)
    # Recorded at 2, 4 and 6 s: inconclusiveLimit counts intervals, not polls.
    assert len(run.metrics[0].measurements) == 3
    assert len(measurer.queries) == 13


def test_polling_stops_after_the_first_data_window() -> None:
    run = start_run(key="k", revision="abc", metrics=[], now=T0)
    measurer = ScriptedMeasurer(iter([EMPTY] * 100))
    engine = AnalysisEngine(measurer)
    seconds = 0.0
    while seconds < FIRST_DATA_WINDOW + 4:
        run = advance(engine, run, seconds)
        seconds += FIRST_DATA_POLL
    last = run.metrics[0].measurements[-1].at
    assert last.endswith("12:00:22Z")  # recorded every 2 s until the window closed ...
    assert not waiting_for_first_data(run, METRIC, now=at(22.5))
    assert next_due(run, [METRIC], now=at(22.5)) == at(24)  # ... then at its interval
    assert due_metrics(run, [METRIC], now=at(23.5)) == []


def test_a_decided_value_ends_the_polling() -> None:
    measurer = ScriptedMeasurer(iter([EMPTY, value(0.01)]))
    engine = AnalysisEngine(measurer)
    run = advance(engine, start_run(key="k", revision="abc", metrics=[], now=T0), 2.0)
    run = advance(engine, run, 2.5)
    assert [m.phase for m in run.metrics[0].measurements] == ["Inconclusive", "Successful"]
    assert not waiting_for_first_data(run, METRIC, now=at(3.0))
    assert next_due(run, [METRIC], now=at(3.0)) == at(4)  # its interval (stamps are whole seconds)
