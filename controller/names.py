"""Names on the wire: the labels, annotations and request actions deployctl reads and writes.

One definition each, imported by the controller, the strategies, the CLI and the sandbox.
Standard library only, so ``deployctl --help`` and the sandbox pay nothing for it. Who
writes and who reads each name:

Labels
- ``ROLLOUT_LABEL``: on every ReplicaSet, pod and check Job of a Rollout (its name);
  the controller's informers select by it.
- ``REVISION_LABEL``: a revision's ReplicaSet and pods (its template hash); Service
  selectors name it to send traffic to exactly one revision.
- ``FOR_REVISION_LABEL``, ``ANALYSIS_LABEL``, ``METRIC_LABEL``: a check Job and its pods
  (the revision it checks, the analysis run key, the metric). Not ``REVISION_LABEL``:
  a check pod must never count as one of the revision's replicas.
- ``ROLE_LABEL``: ``baseline`` on a baseline's ReplicaSet and pods (fresh pods of the
  stable revision beside a canary, with their own ``REVISION_LABEL`` value), so metrics
  and people tell them from the stable's.
- ``EXEMPT_KEY`` (label or annotation): the kind of change a freeze lets through.

Annotations
- ``REQUEST_ANNOTATION``: a one-shot manual request (promote, abort...), a small JSON
  document with an id (``controller.requests``).
- ``REQUESTED_BY_ANNOTATION``, ``REASON_ANNOTATION``, ``CI_ANNOTATION_PREFIX``: who asked
  for a change, why and from which CI job; copied into ``status.history``.
- ``OVERRIDE_REASON_ANNOTATION``: why a frozen change may go ahead anyway.
- ``TEMPLATE_ANNOTATION``, ``IMAGES_ANNOTATION``: on a ReplicaSet, the pod template it was
  made from (``deployctl undo`` restores exactly it) and its images, for people.
- ``HAND_BACK_ANNOTATION``: on a Rollout with ``spec.workloadRef``, ``"true"`` hands the
  workload back to its Deployment (scaled up to full availability before the Rollout's
  pods go; docs/workloads.md).
- ``VERSION_ANNOTATION``: on the leader Lease, the leading controller's version
  (``deployctl version`` reads it).
"""

from __future__ import annotations

from typing import Literal

ROLLOUT_LABEL = "deployctl.io/rollout"
REVISION_LABEL = "deployctl.io/revision"
FOR_REVISION_LABEL = "deployctl.io/for-revision"
ANALYSIS_LABEL = "deployctl.io/analysis"
METRIC_LABEL = "deployctl.io/metric"
EXEMPT_KEY = "deployctl.io/exempt"
ROLE_LABEL = "deployctl.io/role"
BASELINE_ROLE = "baseline"
BASELINE_SUFFIX = "-baseline"
"""A baseline's ``REVISION_LABEL`` value is its stable revision's hash and this."""

REQUEST_ANNOTATION = "deployctl.io/request"
REQUESTED_BY_ANNOTATION = "deployctl.io/requested-by"
REASON_ANNOTATION = "deployctl.io/reason"
CI_ANNOTATION_PREFIX = "deployctl.io/ci-"
OVERRIDE_REASON_ANNOTATION = "deployctl.io/override-reason"
TEMPLATE_ANNOTATION = "deployctl.io/template"
IMAGES_ANNOTATION = "deployctl.io/images"
VERSION_ANNOTATION = "deployctl.io/version"
HAND_BACK_ANNOTATION = "deployctl.io/hand-back"

Action = Literal["promote", "promoteFull", "abort", "retry", "approve"]
"""What a manual request asks for."""
ACTIONS: tuple[Action, ...] = ("promote", "promoteFull", "abort", "retry", "approve")
