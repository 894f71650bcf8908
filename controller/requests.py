"""Manual requests and provenance, carried on the Rollout's annotations.

The CLI (and anyone with kubectl) drives a rollout through the resource, never around
it. A request (promote, promoteFull, abort, retry, approve) is an annotation holding a
small JSON document with a unique id; the controller consumes it exactly once by
recording that id in ``status.lastHandledRequest``. Who asked for a revision, why, and
from which CI job are annotations too, copied into the rollout's history.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from controller.names import (
    ACTIONS,
    CI_ANNOTATION_PREFIX,
    REASON_ANNOTATION,
    REQUEST_ANNOTATION,
    REQUESTED_BY_ANNOTATION,
    Action,
)


@dataclass(frozen=True)
class Request:
    """A manual request. Its ``id`` makes it exactly-once: the controller records it in
    ``status.lastHandledRequest``, and the strategies act only on an id not recorded."""

    action: Action
    id: str
    by: str = ""

    def to_annotation(self) -> str:
        return json.dumps({"action": self.action, "id": self.id, "by": self.by}, sort_keys=True)


def new_request(action: Action, *, by: str) -> Request:
    return Request(action=action, id=uuid.uuid4().hex[:12], by=by)


def parse_request(annotations: Mapping[str, str]) -> Request | None:
    """The pending request, or None when absent or unreadable (a bad one is ignored)."""
    raw = annotations.get(REQUEST_ANNOTATION)
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("action") not in ACTIONS or not data.get("id"):
        return None
    return Request(action=data["action"], id=str(data["id"]), by=str(data.get("by", "")))


# Environment variables of common CI systems -> the short name we record.
_CI_VARIABLES: tuple[tuple[str, str], ...] = (
    ("GITHUB_REPOSITORY", "repository"),
    ("GITHUB_SHA", "commit"),
    ("GITHUB_RUN_ID", "run"),
    ("CI_PROJECT_PATH", "repository"),
    ("CI_COMMIT_SHA", "commit"),
    ("CI_JOB_URL", "job-url"),
    ("CI_PIPELINE_URL", "pipeline-url"),
    ("BUILD_URL", "job-url"),
    ("GIT_COMMIT", "commit"),
    ("BUILDKITE_BUILD_URL", "job-url"),
    ("BUILDKITE_COMMIT", "commit"),
    ("CIRCLE_BUILD_URL", "job-url"),
    ("CIRCLE_SHA1", "commit"),
)


def ci_context(environ: Mapping[str, str]) -> dict[str, str]:
    """What we can tell about the CI job running us, as annotation-safe values."""
    context: dict[str, str] = {}
    for variable, name in _CI_VARIABLES:
        value = environ.get(variable)
        if value and name not in context:
            context[name] = value[:512]
    server, repository, run = (
        environ.get("GITHUB_SERVER_URL"),
        environ.get("GITHUB_REPOSITORY"),
        environ.get("GITHUB_RUN_ID"),
    )
    if server and repository and run and "job-url" not in context:
        context["job-url"] = f"{server}/{repository}/actions/runs/{run}"
    return context


def provenance_annotations(
    *, requested_by: str, reason: str, environ: Mapping[str, str]
) -> dict[str, str]:
    """Annotations recording who asked for a change, why and from which CI job."""
    annotations = {REQUESTED_BY_ANNOTATION: requested_by[:253], REASON_ANNOTATION: reason[:1024]}
    for name, value in ci_context(environ).items():
        annotations[f"{CI_ANNOTATION_PREFIX}{name}"] = value
    return annotations
