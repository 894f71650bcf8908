"""A provider that raises becomes an Error measurement, and the log says where, not what.

The engine is given a web runner (our own seam) that fails the way ``http.client`` did
with a header value outside Latin-1: the exception's message and the frame's locals
would carry the value. The run records an Error naming the exception type; the JSON
log line has the type and the frames' places, and neither the value nor a local.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest

from controller.analysis.run import AnalysisEngine, start_run
from controller.analysis.templating import QueryContext
from controller.analysis.values import QueryFailure
from controller.analysis.webcheck import WebReply
from controller.api.analysis import WebProvider
from controller.api.rollout import AnalysisRef
from controller.logging import configure_logging, get_logger
from tests.analysis.helpers import T0, template

SECRET = "tøken-☃-s3cret"


class RaisingWeb:
    def fetch(self, web: WebProvider, *, namespace: str, budget: float) -> WebReply | QueryFailure:
        header_value = SECRET  # a local, as in the provider that used to crash
        f"X-Token: {header_value}".encode("latin-1")
        raise AssertionError("unreachable")


class NoMeasurer:
    def measure(self, promql: str, *, address: str | None, timeout: float, budget: float) -> None:
        raise AssertionError("no Prometheus metric here")


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(fmt="json", level="debug", stream=stream)
    yield stream
    configure_logging(fmt="console", level="warning")


def test_a_raising_provider_is_an_error_measurement_and_the_log_holds_no_secret(
    json_log: io.StringIO,
) -> None:
    templ = template({"name": "probe", "provider": {"web": {"url": "http://app.example/"}}})
    engine = AnalysisEngine(NoMeasurer(), web=RaisingWeb())  # type: ignore[arg-type]
    run = start_run(key="step-1", revision="abc", metrics=templ.spec.metrics, now=T0)
    run = engine.advance(
        run,
        templates={"http-health": templ},
        ref=AnalysisRef.model_validate({"templates": [{"name": "http-health"}]}),
        context=QueryContext(rollout_name="web", rollout_namespace="shop"),
        now=T0,
    )
    (result,) = run.metrics
    assert result.error == 1 and result.measurements[-1].phase == "Error"
    assert "the check could not be made (UnicodeEncodeError)" in result.message
    (line,) = [json.loads(x) for x in json_log.getvalue().splitlines()]
    assert line["error"] == "UnicodeEncodeError" and line["metric"] == "probe"
    assert any("test_provider_errors.py" in frame for frame in line["at"])
    assert "s3cret" not in json_log.getvalue() and "\\u2603" not in json_log.getvalue()
    assert "s3cret" not in run.model_dump_json()


def test_a_logged_exception_carries_no_locals(json_log: io.StringIO) -> None:
    def send() -> None:
        header_value = SECRET
        f"X-Token: {header_value}".encode("latin-1")

    try:
        send()
    except UnicodeEncodeError:
        get_logger("test").exception("reconcile crashed")
    (line,) = [json.loads(x) for x in json_log.getvalue().splitlines()]
    frames = line["exception"][0]["frames"]
    assert frames and all("locals" not in frame for frame in frames)
    assert "s3cret" not in json_log.getvalue()
