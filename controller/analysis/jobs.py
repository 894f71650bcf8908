"""Kubernetes Jobs as checks: a smoke test, a migration, any command whose exit says it.

The analysis engine asks ``JobChecks.check`` about one attempt of a job metric (or a
hook). The first call creates the Job; later calls read it from the informer cache and
answer None while it runs, then a ``Judgement``: Successful when the Job completed,
Failed when it failed (its pods' backoff spent, or ``activeDeadlineSeconds`` passed).
The evidence is the Job's failure condition and the tail of the failed container's log,
which the kubelet puts in the container's termination message under
``terminationMessagePolicy: FallbackToLogsOnError`` (our default): no ``pods/log``
permission needed and nothing streamed.

A Job is owned by the Rollout (garbage-collected with it) and labelled with the
rollout, the revision it checks and the analysis run; its name is derived from those
and the attempt number, so a controller restarted mid-check finds its Job again instead
of starting a second one. Finished Jobs beyond ``JOB_HISTORY_LIMIT`` per rollout are
deleted, oldest first, each time one of its Jobs gives its verdict (``tidy``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import structlog

from controller.analysis.verdict import Judgement
from controller.api.rollout import JobProvider
from controller.cache import Cache, Obj
from controller.names import ANALYSIS_LABEL, FOR_REVISION_LABEL, METRIC_LABEL, ROLLOUT_LABEL
from controller.times import parse_timestamp

log = structlog.stdlib.get_logger(__name__)


JOB_HISTORY_LIMIT = 10
# While a Job runs, look at it at least this often (Job events also wake the rollout).
JOB_POLL_SECONDS = 5.0
MAX_EVIDENCE = 600
# How long a finished Job's verdict waits for its pod's final status to reach the cache.
EVIDENCE_WAIT = 10.0


@dataclass(frozen=True)
class JobCheck:
    """One attempt of a job metric: what to run and for whom."""

    namespace: str
    rollout: str
    revision: str
    run_key: str
    run_started_at: str
    metric: str
    attempt: int
    provider: JobProvider
    now: datetime | None = None
    """When the check is made (not part of the Job's identity)."""

    @property
    def name(self) -> str:
        """A DNS label (<= 63 chars, as the job-name pod label needs), unique per attempt."""
        identity = "/".join(
            (
                self.namespace,
                self.rollout,
                self.revision,
                self.run_key,
                self.run_started_at,
                self.metric,
                str(self.attempt),
            )
        )
        digest = hashlib.sha256(identity.encode()).hexdigest()[:10]
        prefix = re.sub(r"[^a-z0-9-]", "-", f"{self.rollout}-{self.metric}".lower())[:52]
        return f"{prefix.strip('-')}-{digest}"


class JobApi(Protocol):
    def create_job(
        self, namespace: str, body: Mapping[str, Any], *, owner: Mapping[str, Any]
    ) -> Obj | None: ...
    def delete_job(self, namespace: str, name: str, *, uid: str | None = None) -> bool: ...


def job_body(check: JobCheck) -> Obj:
    """The Job to create for ``check``: the template's spec with our labels and defaults."""
    provider = check.provider
    spec = provider.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    labels = {
        **provider.metadata.labels,
        ROLLOUT_LABEL: check.rollout,
        FOR_REVISION_LABEL: check.revision,
        ANALYSIS_LABEL: check.run_key,
        METRIC_LABEL: check.metric[:63],
    }
    template = spec.setdefault("template", {})
    template_meta = template.setdefault("metadata", {})
    # The rollout label puts the pods in the controller's pod cache (for the evidence);
    # without the revision label they never count as one of the rollout's replicas.
    template_meta["labels"] = {
        **(template_meta.get("labels") or {}),
        ROLLOUT_LABEL: check.rollout,
        FOR_REVISION_LABEL: check.revision,
    }
    pod_spec = template.setdefault("spec", {})
    pod_spec.setdefault("restartPolicy", "Never")
    for container in pod_spec.get("containers") or []:
        container.setdefault("terminationMessagePolicy", "FallbackToLogsOnError")
    return {
        "metadata": {
            "name": check.name,
            "labels": labels,
            "annotations": dict(provider.metadata.annotations),
        },
        "spec": spec,
    }


def _condition(job: Obj, kind: str) -> Obj | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return dict(condition)
    return None


def _recent(condition: Obj, now: datetime | None) -> bool:
    """Whether ``condition`` changed less than EVIDENCE_WAIT seconds before ``now``."""
    since = condition.get("lastTransitionTime")
    if now is None or not since:
        return False
    try:
        changed = parse_timestamp(str(since))
    except ValueError:
        return False
    return (now - changed).total_seconds() < EVIDENCE_WAIT


def _pod_evidence(pods: list[Obj]) -> str:
    """How the newest finished pod ended: exit code, reason, and its message (log tail)."""
    finished = [p for p in pods if (p.get("status") or {}).get("phase") in ("Succeeded", "Failed")]
    if not finished:
        return ""
    pod = max(finished, key=lambda p: str(p.get("metadata", {}).get("creationTimestamp", "")))
    parts = []
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated") or {}
        if not terminated:
            continue
        text = f"container {status.get('name')} exited {terminated.get('exitCode')}"
        if terminated.get("reason"):
            text += f" ({terminated['reason']})"
        message = str(terminated.get("message") or "").strip()
        if message:
            text += ": " + message[-MAX_EVIDENCE:].replace("\n", " | ")
        parts.append(text)
    name = pod.get("metadata", {}).get("name", "?")
    return f"pod {name}: " + "; ".join(parts) if parts else f"pod {name}"


class JobChecks:
    """Creates, reads and tidies check Jobs; reads only from the informer caches."""

    def __init__(self, api: JobApi, *, jobs: Cache, pods: Cache, rollouts: Cache) -> None:
        self.api = api
        self.jobs = jobs
        self.pods = pods
        self.rollouts = rollouts

    def check(self, check: JobCheck) -> Judgement | None:
        """The attempt's verdict, or None while its Job runs (created on the first call)."""
        job = self.jobs.get(check.namespace, check.name)
        if job is None:
            owner = self.rollouts.get(check.namespace, check.rollout)
            if owner is None:
                return None  # the rollout is going away; nothing to run a check for
            created = self.api.create_job(check.namespace, job_body(check), owner=owner)
            log.info(
                "check job created" if created is not None else "check job exists",
                namespace=check.namespace,
                rollout=check.rollout,
                job=check.name,
                metric=check.metric,
            )
            return None
        pods = self.pods.list(check.namespace, labels={"job-name": check.name})
        done = _condition(job, "Complete") or _condition(job, "Failed")
        if done is not None and not _pod_evidence(pods) and _recent(done, check.now):
            # The pod cache may lag the Job cache: wait (a pod event wakes the rollout)
            # rather than lose the evidence, for a few seconds at most.
            return None
        if _condition(job, "Complete") is not None:
            evidence = _pod_evidence(pods)
            message = f"{check.metric}: Job {check.name} succeeded" + (
                f" ({evidence})" if evidence else ""
            )
            return Judgement(phase="Successful", value="0", message=message)
        failed = _condition(job, "Failed")
        if failed is not None:
            why = failed.get("reason") or "Failed"
            detail = failed.get("message") or ""
            evidence = _pod_evidence(pods)
            message = f"{check.metric}: Job {check.name} failed ({why}"
            message += f": {detail})" if detail else ")"
            if evidence:
                message += f"; {evidence}"
            return Judgement(phase="Failed", value="1", message=message)
        return None

    def tidy(self, namespace: str, rollout: str, *, keep: int = JOB_HISTORY_LIMIT) -> int:
        """Delete this rollout's finished check Jobs beyond ``keep``, oldest first."""
        jobs = self.jobs.list(namespace, labels={ROLLOUT_LABEL: rollout})
        finished = sorted(
            (j for j in jobs if _condition(j, "Complete") or _condition(j, "Failed")),
            key=lambda j: str(j.get("metadata", {}).get("creationTimestamp", "")),
        )
        deleted = 0
        for job in finished[: max(0, len(finished) - keep)]:
            meta = job.get("metadata", {})
            if self.api.delete_job(namespace, str(meta.get("name")), uid=meta.get("uid")):
                deleted += 1
        return deleted
