"""Whether the API server vouches for approvals: deployctl's admission policy is in force.

``manifests/admission/`` holds two ValidatingAdmissionPolicies (Kubernetes 1.30+) and
their bindings: ``deployctl.io-identity`` admits a request annotation (``approve`` and
the others) only under the writer's own user name and an override only with
``deployctl.io/requested-by`` set to it; ``deployctl.io-approval-rules`` takes each
DeliveryPolicy as a parameter and admits an approval only from a member of the rules'
``groups``, never from the requester under ``requireDifferentApprover``, and a template
change under such a rule only with the requester's real name. docs/security.md#approvals.

``ApprovalAdmission.verified()`` reads the policies and bindings (a few GETs, at most
every ``ttl`` seconds: the reconcile pass asks often) and tells the policy gate, which
says "unverified" in approval messages when they are not in force. Any failure to read
them (a cluster without the API, the RBAC of ``manifests/admission/`` not applied) counts
as unverified, logged once per change.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

import structlog

log = structlog.stdlib.get_logger(__name__)

POLICIES = ("deployctl.io-identity", "deployctl.io-approval-rules")
BINDINGS = ("deployctl.io-identity", "deployctl.io-approval-rules")
DEFAULT_TTL = 300.0


class AdmissionReader(Protocol):
    def admission_problem(
        self, policies: tuple[str, ...], bindings: tuple[str, ...]
    ) -> str | None: ...


class ApprovalAdmission:
    """A cached answer to "are approvals vouched for?" (see the module docstring)."""

    def __init__(
        self,
        kube: AdmissionReader,
        *,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._problem: str | None = "not checked yet"

    def verified(self) -> bool:
        with self._lock:
            now = self.clock()
            if self._checked_at is None or now - self._checked_at >= self.ttl:
                self._checked_at = now
                problem = self._problem_now()
                if problem != self._problem:
                    if problem is None:
                        log.info("approvals are verified by the API server's admission policy")
                    else:
                        log.warning("approvals are unverified", reason=problem)
                self._problem = problem
            return self._problem is None

    def _problem_now(self) -> str | None:
        try:
            return self.kube.admission_problem(POLICIES, BINDINGS)
        except Exception as exc:  # noqa: BLE001 - any failure means "not vouched for"
            return f"cannot read the admission policies ({type(exc).__name__}: {exc})"
