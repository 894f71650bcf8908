"""``deployctl status`` names analysis runs as people do and says when a provider does
not answer (pure rendering of a Rollout as read from the API)."""

from __future__ import annotations

from rich.console import Console

from controller.commands.render import describe_run, status_document, status_view

ROLLOUT = {
    "metadata": {"name": "shop", "namespace": "ns"},
    "spec": {"strategy": {"canary": {"steps": [{"setWeight": 50}, {"analysis": {}}]}}},
    "status": {
        "phase": "Paused",
        "reason": "AnalysisProviderUnreachable",
        "message": "alive: Prometheus unavailable; paused until the provider answers",
        "analysisRuns": [
            {
                "key": "step-1",
                "revision": "abc",
                "phase": "Running",
                "metrics": [
                    {
                        "name": "alive",
                        "phase": "Running",
                        "unreachableSince": "2026-03-01T12:00:05Z",
                        "measurements": [{"phase": "Error", "at": "2026-03-01T12:01:00Z"}],
                    }
                ],
            }
        ],
    },
}


def test_run_keys_read_as_people_name_them() -> None:
    assert describe_run("gate-50") == "gate at 50%"
    assert describe_run("hook-preRollout") == "preRollout hooks"
    assert describe_run("tomorrow-1") == "tomorrow-1"  # a key this version does not know


def test_status_says_the_provider_is_unreachable_and_since_when() -> None:
    doc = status_document(ROLLOUT, [])
    assert doc["reason"] == "AnalysisProviderUnreachable"
    (measurement,) = doc["measurements"]
    assert measurement["about"] == "step 1 analysis"
    assert measurement["unreachableSince"] == "2026-03-01T12:00:05Z"
    console = Console(width=200, record=True)
    console.print(status_view(ROLLOUT, []))
    text = console.export_text()
    assert "AnalysisProviderUnreachable" in text
    assert "Unreachable since 2026-03-01T12:00:05Z" in text
