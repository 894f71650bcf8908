"""The deployctl.io/v1alpha1 API: pydantic models of the custom resources.

These models are the single source of truth: the CRDs in ``manifests/crds/`` are
generated from them (``make crds``), the CLI validates files with them, and the
controller parses every object it reads through them.
"""

from controller.api.analysis import (
    AnalysisTemplate,
    AnalysisTemplateSpec,
    ErrorRatePreset,
    LatencyPreset,
    Metric,
    PrometheusProvider,
    SloPreset,
    Threshold,
)
from controller.api.common import API_GROUP, API_VERSION, GROUP_VERSION, Arg, ObjectMeta
from controller.api.duration import Duration
from controller.api.rollout import (
    AnalysisRef,
    BlueGreenStrategy,
    CanaryStep,
    CanaryStrategy,
    PromotionGate,
    RollingStrategy,
    Rollout,
    RolloutSpec,
    Strategy,
    TemplateRef,
)
from controller.api.status import (
    Condition,
    HistoryEntry,
    Measurement,
    MetricResult,
    Phase,
    RolloutStatus,
)

__all__ = [
    "API_GROUP",
    "API_VERSION",
    "GROUP_VERSION",
    "AnalysisRef",
    "AnalysisTemplate",
    "AnalysisTemplateSpec",
    "Arg",
    "BlueGreenStrategy",
    "CanaryStep",
    "CanaryStrategy",
    "Condition",
    "Duration",
    "ErrorRatePreset",
    "HistoryEntry",
    "LatencyPreset",
    "SloPreset",
    "Measurement",
    "Metric",
    "MetricResult",
    "ObjectMeta",
    "Phase",
    "PromotionGate",
    "PrometheusProvider",
    "RollingStrategy",
    "Rollout",
    "RolloutSpec",
    "RolloutStatus",
    "Strategy",
    "TemplateRef",
    "Threshold",
]
