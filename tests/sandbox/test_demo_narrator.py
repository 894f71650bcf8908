"""The demo's narrator tells every measurement once, even two in the same second.

Status times are whole seconds and the analysis measures on a 0.5 s grid, so a
Successful measurement and the Failed one that rolls the canary back can carry the same
``at``; the second must still be told (the demo shows the measurement that decided).
"""

from __future__ import annotations

from typing import Any

import pytest

from sandbox import demo


def status(*measurements: tuple[str, float]) -> dict[str, Any]:
    return {
        "phase": "Progressing",
        "analysisRuns": [
            {
                "key": "step-2",
                "revision": "abc",
                "metrics": [
                    {
                        "name": "error-rate",
                        "measurements": [
                            {"at": "2026-12-04T23:10:40Z", "phase": phase, "value": value}
                            for phase, value in measurements
                        ],
                    }
                ],
            }
        ],
    }


def test_a_failed_measurement_in_the_same_second_as_a_successful_one_is_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    told: list[str] = []
    monkeypatch.setattr(demo, "say", told.append)
    narrator = demo.Narrator()
    narrator.tell(status(("Successful", 0.0)))
    narrator.tell(status(("Successful", 0.0), ("Failed", 0.3)))
    narrator.tell(status(("Successful", 0.0), ("Failed", 0.3)))
    assert [line.split(": ", 1)[1] for line in told] == [
        "0.0% -> [green]Successful[/green]",
        "30.0% -> [red]Failed[/red]",
    ]
