"""Builders shared by the analysis tests: metrics, templates and a frozen clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from controller.api.analysis import AnalysisTemplate, Metric

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """The frozen clock: ``seconds`` after T0."""
    return T0 + timedelta(seconds=seconds)


def metric(**fields: Any) -> Metric:
    spec: dict[str, Any] = {
        "name": "error-rate",
        "interval": "10s",
        "threshold": {"max": 0.05},
        "provider": {"prometheus": {"query": "vector(0)"}},
    }
    spec.update(fields)
    return Metric.model_validate(spec)


def template(
    *metrics: dict[str, Any], args: list[dict[str, str]] | None = None
) -> AnalysisTemplate:
    return AnalysisTemplate.model_validate(
        {
            "apiVersion": "deployctl.io/v1alpha1",
            "kind": "AnalysisTemplate",
            "metadata": {"name": "http-health"},
            "spec": {"args": args or [], "metrics": list(metrics)},
        }
    )
