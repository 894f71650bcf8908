"""Condition types, reasons and the one helper that sets a condition.

Every reason the controller writes (status.reason, Condition.reason, Event reason) is a
constant here, so a dashboard or an alert can match on it and a typo is a NameError.
Reasons are CamelCase single words, as the Kubernetes API conventions ask. Used by the
strategies (which build status) and the reconciler (which reports invalid specs and
API errors).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final, Literal

from controller.api.status import Condition
from controller.times import timestamp


class ConditionType:
    """The condition types a Rollout carries; set from the first visit on."""

    PROGRESSING: Final = "Progressing"
    AVAILABLE: Final = "Available"
    PAUSED: Final = "Paused"
    DEGRADED: Final = "Degraded"
    INVALID_SPEC: Final = "InvalidSpec"


# A rollout moves forward.
FIRST_DEPLOY: Final = "FirstDeploy"
NEW_REVISION: Final = "NewRevision"
STEP_STARTED: Final = "StepStarted"
WEIGHT_SET: Final = "WeightSet"
ROUTE_SET: Final = "RouteSet"
WAITING_FOR_REPLICAS: Final = "WaitingForReplicas"
ANALYSIS_STARTED: Final = "AnalysisStarted"
ANALYSIS_RUNNING: Final = "AnalysisRunning"
ANALYSIS_SUCCESSFUL: Final = "AnalysisSuccessful"
ANALYSIS_GATE: Final = "AnalysisGate"
SCALED_UP: Final = "ScaledUp"
SCALED_DOWN: Final = "ScaledDown"
SERVICE_SWITCHED: Final = "ServiceSwitched"
PROMOTED: Final = "Promoted"
PROMOTED_FULL: Final = "PromotedFull"
APPROVED: Final = "Approved"
RESUMED: Final = "Resumed"
RETRIED: Final = "Retried"
SUPERSEDED: Final = "Superseded"
HEALTHY: Final = "Healthy"
ROLLING_UPDATE: Final = "RollingUpdate"
REQUEST_IGNORED: Final = "RequestIgnored"
HOOK_RUNNING: Final = "HookRunning"
HOOK_SUCCEEDED: Final = "HookSucceeded"
HOOK_FAILED: Final = "HookFailed"

# A rollout waits for a person or a timer.
PAUSED: Final = "Paused"
PAUSE_STEP: Final = "PauseStep"
WAITING_FOR_REQUESTS: Final = "WaitingForRequests"
NO_CANARY_TRAFFIC: Final = "NoCanaryTraffic"
REQUESTS_TIMED_OUT: Final = "RequestsTimedOut"
AWAITING_APPROVAL: Final = "AwaitingApproval"
AWAITING_PROMOTION: Final = "AwaitingPromotion"
ANALYSIS_INCONCLUSIVE: Final = "AnalysisInconclusive"
# The metrics provider does not answer (connection refused, timeout, 5xx): the rollout
# waits and measures again by itself (onProviderError: pause).
ANALYSIS_PROVIDER_UNREACHABLE: Final = "AnalysisProviderUnreachable"

# Delivery policy (controller/policy/): a new revision waits before it starts.
FROZEN_UNTIL: Final = "FrozenUntil"
ERROR_BUDGET_EXHAUSTED: Final = "ErrorBudgetExhausted"
OUTSIDE_WINDOW: Final = "OutsideWindow"
AWAITING_GATE: Final = "AwaitingGate"
POLICY_ALLOWED: Final = "PolicyAllowed"
POLICY_OVERRIDDEN: Final = "PolicyOverridden"
OVERRIDE_REFUSED: Final = "OverrideRefused"
GATE_SATISFIED: Final = "GateSatisfied"
NOTIFICATION_FAILED: Final = "NotificationFailed"

# A rollout failed; traffic is back on the stable revision.
ABORTED: Final = "Aborted"
ANALYSIS_FAILED: Final = "AnalysisFailed"
PROGRESS_DEADLINE_EXCEEDED: Final = "ProgressDeadlineExceeded"
CANARY_CRASH_LOOPING: Final = "CanaryCrashLooping"
PRE_ROLLOUT_HOOK_FAILED: Final = "PreRolloutHookFailed"
POST_PROMOTION_HOOK_FAILED: Final = "PostPromotionHookFailed"
ROLLED_BACK: Final = "RolledBack"
INVALID_SPEC: Final = "InvalidSpec"
SPEC_VALID: Final = "SpecValid"

# A DaemonSet Rollout (controller/daemon.py): its updateStrategy held at OnDelete while
# deployctl replaces its pods, the user's own one put back once every Node is stable.
UPDATE_STRATEGY_HELD: Final = "UpdateStrategyHeld"
UPDATE_STRATEGY_RESTORED: Final = "UpdateStrategyRestored"

# Releases across clusters (controller/release/): Release.status and its Events.
RELEASE_STARTED: Final = "ReleaseStarted"
WAVE_STARTED: Final = "WaveStarted"
WAVE_SOAKING: Final = "WaveSoaking"
WAVE_SUCCEEDED: Final = "WaveSucceeded"
SOAK_SKIPPED: Final = "SoakSkipped"
CLUSTER_STARTED: Final = "ClusterStarted"
CLUSTER_CHANGE_FAILED: Final = "ClusterChangeFailed"
CLUSTER_PROGRESSING: Final = "ClusterProgressing"
CLUSTER_HEALTHY: Final = "ClusterHealthy"
CLUSTER_HELD: Final = "ClusterHeld"
CLUSTER_WAITING: Final = "ClusterWaiting"
CLUSTER_BUSY: Final = "ClusterBusy"
CLUSTER_UNREACHABLE: Final = "ClusterUnreachable"
CLUSTER_REACHABLE: Final = "ClusterReachable"
CLUSTER_FAILED: Final = "ClusterFailed"
CLUSTER_TIMED_OUT: Final = "ClusterTimedOut"
CLUSTER_SUPERSEDED: Final = "ClusterSuperseded"
CLUSTER_FORBIDDEN: Final = "ClusterForbidden"
CLUSTER_TARGET_MISSING: Final = "ClusterTargetMissing"
ROLLOUT_NOT_FOUND: Final = "RolloutNotFound"
INVALID_CHANGE: Final = "InvalidChange"
SPEC_CHANGED: Final = "SpecChanged"
RELEASE_HALTED: Final = "ReleaseHalted"
ROLLING_BACK: Final = "RollingBack"
CLUSTER_ROLLED_BACK: Final = "ClusterRolledBack"
RELEASE_SUCCEEDED: Final = "ReleaseSucceeded"

ConditionStatus = Literal["True", "False", "Unknown"]


def set_condition(
    conditions: Sequence[Condition],
    type_: str,
    *,
    status: ConditionStatus,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
) -> list[Condition]:
    """``conditions`` with ``type_`` set; lastTransitionTime moves only when status does.

    >>> from datetime import UTC, datetime
    >>> t0, t1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    >>> first = set_condition([], "Paused", status="True", reason="Paused", message="",
    ...                       now=t0, generation=1)
    >>> again = set_condition(first, "Paused", status="True", reason="PauseStep", message="",
    ...                       now=t1, generation=2)
    >>> again[0].last_transition_time, again[0].reason
    ('2026-01-01T00:00:00Z', 'PauseStep')
    """
    previous = next((c for c in conditions if c.type == type_), None)
    transition = (
        previous.last_transition_time
        if previous is not None and previous.status == status and previous.last_transition_time
        else timestamp(now)
    )
    updated = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=transition,
        observed_generation=generation,
    )
    out = [c for c in conditions if c.type != type_]
    out.append(updated)
    return sorted(out, key=lambda c: c.type)
