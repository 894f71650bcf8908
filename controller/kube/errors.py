"""The Kubernetes adapter's errors: one tree, mapped once from HTTP statuses.

Every failed API call raises one of these (``transport`` maps a response, or its
absence, here; ``watch`` maps an ERROR event), so callers catch by meaning and never
look at status codes::

    KubeError                 any failed API call (verb, resource, code, reason, message)
    ├── Transient             worth retrying: 429, 5xx, connection errors, timeouts
    │   │                     (retry_after: seconds the server asked us to wait, or None)
    │   └── Conflict          409 Conflict: stale resourceVersion; re-read, then retry
    ├── Permanent             retrying cannot help: 400, 401, 422, other 4xx
    │   ├── Forbidden         403; the message names the verb and the resource
    │   ├── NamespaceTerminating  403 creating in a namespace being deleted
    │   └── AlreadyExists     409 AlreadyExists on create
    ├── NotFound              404: the object (or its kind) does not exist
    └── Gone                  410: the resourceVersion was compacted; re-list

    KubeconfigError           no usable kubeconfig (no API call was made)

Messages name the verb, the resource, the namespace and the name, never a URL or a
header: bearer tokens stay out of logs and exceptions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.kube.kinds import KindRef


class KubeError(Exception):
    """A failed Kubernetes API call."""

    def __init__(
        self,
        message: str,
        *,
        verb: str,
        resource: str,
        code: int | None = None,
        reason: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.verb = verb
        self.resource = resource
        self.code = code
        self.reason = reason


class Transient(KubeError):
    """Worth retrying later (the adapter already retried a bounded number of times)."""

    def __init__(
        self,
        message: str,
        *,
        verb: str,
        resource: str,
        code: int | None = None,
        reason: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, verb=verb, resource=resource, code=code, reason=reason)
        self.retry_after = retry_after


class Conflict(Transient):
    """409 Conflict: our resourceVersion is stale; re-read and decide again."""


class Permanent(KubeError):
    """Retrying the same request cannot succeed."""


class Forbidden(Permanent):
    """403: RBAC denies this verb on this resource."""


class AlreadyExists(Permanent):
    """409 AlreadyExists: create of a name that is taken."""


class NamespaceTerminating(Permanent):
    """403 with cause NamespaceTerminating: nothing new may be created in a namespace
    that is being deleted (its rollouts are going away with it)."""


class NotFound(KubeError):
    """404: no such object (or no such kind: a CRD not installed)."""


class Gone(KubeError):
    """410: the requested resourceVersion is too old (compacted); list again."""


class KubeconfigError(Exception):
    """No usable kubeconfig: missing file, unknown context, unreadable credentials."""


def retryable(exc: BaseException) -> bool:
    """Whether the transport retries ``exc``: Transient, except Conflict (re-read first)."""
    return isinstance(exc, Transient) and not isinstance(exc, Conflict)


@dataclass(frozen=True)
class StatusBody:
    """What an error response's ``Status`` body says, read once (tolerating junk)."""

    message: str = ""
    reason: str = ""
    retry_after: float | None = None
    namespace_terminating: bool = False

    @classmethod
    def parse(cls, body: bytes | str | None) -> StatusBody:
        if not body:
            return cls()
        try:
            status = json.loads(body)
        except (TypeError, ValueError):
            text = body.decode(errors="replace") if isinstance(body, bytes) else body
            return cls(message=text[:300])
        if not isinstance(status, dict):
            return cls()
        details = status.get("details")
        details = details if isinstance(details, dict) else {}
        retry = details.get("retryAfterSeconds")
        causes = details.get("causes")
        return cls(
            message=str(status.get("message", "")),
            reason=str(status.get("reason", "")),
            retry_after=float(retry) if isinstance(retry, int | float) else None,
            # The cause's ``reason`` (metav1.CauseType) is NamespaceTerminating.
            namespace_terminating=any(
                isinstance(c, dict) and "NamespaceTerminating" in (c.get("reason"), c.get("type"))
                for c in (causes if isinstance(causes, list) else [])
            ),
        )


def _retry_after_header(headers: Mapping[str, str] | None) -> float | None:
    if not headers:
        return None
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None  # an HTTP date: the apiserver never sends one; treat as absent


def describe(verb: str, kind: KindRef, namespace: str | None, name: str | None) -> str:
    """``get rollouts.deployctl.io 'shop' in namespace 'web'``: what a call was about."""
    what = f"{verb} {kind.resource}"
    if name:
        what += f" {name!r}"
    if namespace:
        what += f" in namespace {namespace!r}"
    return what


def error_from_status(
    code: int,
    *,
    body: bytes | str | None,
    headers: Mapping[str, str] | None,
    verb: str,
    kind: KindRef,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> KubeError:
    """Map an HTTP status (and its ``Status`` body) onto our error tree."""
    status = StatusBody.parse(body)
    message, reason = status.message, status.reason
    retry_after = _retry_after_header(headers) or status.retry_after
    resource = kind.resource + (f"/{subresource}" if subresource else "")
    what = describe(verb, kind, namespace, name)
    if subresource:
        what = what.replace(kind.resource, resource, 1)
    text = f"{what}: {code} {reason or 'error'}: {message}".rstrip(": ")
    common: dict[str, Any] = {"verb": verb, "resource": resource, "code": code, "reason": reason}
    if code == 410:
        return Gone(text, **common)
    if code == 404:
        return NotFound(text, **common)
    if code == 409:
        if reason == "AlreadyExists":
            return AlreadyExists(text, **common)
        return Conflict(text, retry_after=retry_after, **common)
    if code == 429 or code >= 500:
        return Transient(text, retry_after=retry_after, **common)
    if code == 403 and status.namespace_terminating:
        return NamespaceTerminating(f"{what}: namespace {namespace} is being deleted", **common)
    if code == 403:
        return Forbidden(f"forbidden: cannot {what}: {message}", **common)
    return Permanent(text, **common)
