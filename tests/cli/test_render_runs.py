"""``deployctl status`` names analysis runs as people do and says when a provider does
not answer (pure rendering of a Rollout as read from the API)."""

from __future__ import annotations

from typing import Any

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


JUDGED: dict[str, Any] = {
    "metadata": {"name": "shop", "namespace": "ns"},
    "spec": {"strategy": {"canary": {"steps": [{"setWeight": 20}, {"analysis": {}}]}}},
    "status": {
        "phase": "Degraded",
        "stableRevision": "s1",
        "analysisRuns": [
            {
                "key": "step-1",
                "revision": "c1",
                "phase": "Failed",
                "score": 40.0,
                "metrics": [
                    {
                        "name": "latency",
                        "phase": "Failed",
                        "failed": 1,
                        "measurements": [
                            {
                                "phase": "Failed",
                                "at": "2026-03-01T12:01:00Z",
                                "value": "0.12",
                                "comparison": {
                                    "against": "baseline",
                                    "canarySamples": 240,
                                    "comparisonSamples": 238,
                                    "canaryMedian": 0.12,
                                    "comparisonMedian": 0.1,
                                    "effect": 0.2,
                                    "pValue": 1.2e-08,
                                    "shift": 0.02,
                                    "shiftLow": 0.018,
                                    "shiftHigh": 0.022,
                                    "confidence": 0.98,
                                },
                            }
                        ],
                    }
                ],
            }
        ],
    },
}


def test_status_shows_the_judges_evidence_in_one_block() -> None:
    (measurement,) = status_document(JUDGED, [])["measurements"]
    assert measurement["comparison"]["pValue"] == 1.2e-08
    assert measurement["score"] == 40.0
    console = Console(width=200, record=True)
    console.print(status_view(JUDGED, []))
    text = console.export_text()
    block = text[text.index("Judge") :]
    assert block.splitlines()[1:7] == [
        "step 1 analysis · latency against baseline: Failed",
        "  samples  canary 240, baseline 238",
        "  medians  canary 0.12, baseline 0.1 (+20.0%)",
        "  p-value  1.2e-08 (fails below 0.02, confidence 98%)",
        "  shift    0.02 [0.018, 0.022] at 98%",
        "  score    40",
    ]


def test_baseline_replicas_are_named_as_such() -> None:
    replicasets = [
        {
            "metadata": {"labels": {"deployctl.io/revision": rev}},
            "spec": {"replicas": n},
            "status": {"readyReplicas": n, "availableReplicas": n},
        }
        for rev, n in (("s1", 6), ("c1", 2), ("s1-baseline", 2))
    ]
    rollout = {**JUDGED, "status": {**JUDGED["status"], "canaryRevision": "c1"}}
    console = Console(width=200, record=True)
    console.print(status_view(rollout, replicasets))
    lines = [line.split() for line in console.export_text().splitlines()]
    rows = {
        cells[0]: cells[1] for cells in lines if cells and cells[0] in ("s1", "c1", "s1-baseline")
    }
    assert rows == {"s1": "stable", "c1": "canary", "s1-baseline": "baseline"}
