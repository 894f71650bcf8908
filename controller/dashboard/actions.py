"""The dashboard's buttons: which actions a person may take on a Rollout, and taking them.

An action goes the CLI's way (``controller.commands.control``): promote, abort, retry and
approve as the one-shot request annotation the controller consumes, pause/resume as
``spec.paused``, undo as an earlier revision's template. So the same RBAC (the user's own
kubeconfig), the same audit (``by`` in the request, the rollout's history) and the same
approval rules apply as at a terminal.

An action is offered disabled, with the reason, when the credentials may not ``patch``
the Rollout (a SelfSubjectAccessReview, cached for ``ttl`` seconds), when no controller
holds the leader Lease (nothing would act), or when the Rollout's state leaves nothing
to do (no revision in flight to promote, nothing aborted to retry ...).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from controller.commands.common import (
    CliError,
    Session,
    controller_state,
    describe_kube_error,
    require_controller,
)
from controller.commands.control import pick_revision, request_undo, send_request, set_paused
from controller.commands.render import pending_approval
from controller.kube import ROLLOUTS, Forbidden, Kube, KubeError

Obj = Mapping[str, Any]
ACTIONS = ("promote", "abort", "retry", "pause", "resume", "undo", "approve")
_CACHE_SIZE = 256


@dataclass(frozen=True)
class Offer:
    action: str
    label: str
    enabled: bool
    reason: str
    """Why it is disabled; or, when enabled, what confirming will do."""


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str
    status: int = 200


class _Ttl:
    """A small bounded cache of answers that go stale after ``ttl`` seconds."""

    def __init__(self, ttl: float, clock: Callable[[], float]) -> None:
        self.ttl = ttl
        self._clock = clock
        self._items: OrderedDict[Any, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any, compute: Callable[[], Any]) -> Any:
        now = self._clock()
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and now - hit[0] < self.ttl:
                return hit[1]
        value = compute()
        with self._lock:
            self._items[key] = (now, value)
            self._items.move_to_end(key)
            while len(self._items) > _CACHE_SIZE:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class Actions:
    """Offers and performs actions with one user's credentials."""

    def __init__(
        self,
        kube: Kube,
        *,
        user: str,
        ack_timeout: float = 30.0,
        ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.user = user
        self.ack_timeout = ack_timeout
        self._permissions = _Ttl(ttl, clock)
        self._controller = _Ttl(min(ttl, 10.0), clock)

    def session(self, namespace: str) -> Session:
        return Session(kube=self.kube, namespace=namespace, user=self.user)

    # ------------------------------------------------------------------ offering

    def may_patch(self, namespace: str, name: str) -> tuple[bool, str]:
        def review() -> tuple[bool, str]:
            try:
                allowed, why = self.kube.may("patch", ROLLOUTS, namespace, name)
            except KubeError as exc:
                return False, f"cannot check your permissions: {describe_kube_error(exc)[0]}"
            if allowed:
                return True, ""
            detail = f" ({why})" if why else ""
            return (
                False,
                f"your credentials may not patch rollouts in namespace {namespace}{detail}; "
                "the same rights as `deployctl promote` are needed",
            )

        result: tuple[bool, str] = self._permissions.get((namespace, name), review)
        return result

    def controller_running(self, namespace: str) -> tuple[bool, str]:
        def check() -> tuple[bool, str]:
            try:
                state = controller_state(self.session(namespace))
            except KubeError as exc:
                return (
                    False,
                    f"cannot tell whether a controller runs: {describe_kube_error(exc)[0]}",
                )
            if state.running:
                return True, ""
            return False, f"no deployctl controller is running ({state.detail}): nothing would act"

        result: tuple[bool, str] = self._controller.get("controller", check)
        return result

    def offers(self, rollout: Obj) -> list[Offer]:
        meta = rollout.get("metadata") or {}
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        allowed, denied = self.may_patch(namespace, name)
        running, absent = (True, "") if not allowed else self.controller_running(namespace)
        out = []
        for action, label, possible, detail in state_offers(rollout):
            if not allowed:
                out.append(Offer(action, label, False, denied))
            elif not running:
                out.append(Offer(action, label, False, absent))
            else:
                out.append(Offer(action, label, possible, detail))
        return out

    # ------------------------------------------------------------------ performing

    def perform(self, namespace: str, name: str, action: str) -> Outcome:
        if action not in ACTIONS:
            return Outcome(False, f"unknown action {action!r}; one of {', '.join(ACTIONS)}", 404)
        session = self.session(namespace)
        try:
            require_controller(session)
            if action in ("pause", "resume"):
                rollout = set_paused(session, name, action == "pause", ack_timeout=self.ack_timeout)
            elif action == "undo":
                from controller.commands.rollout import revision_of

                written = request_undo(session, name)
                return Outcome(
                    True, f"{namespace}/{name}: undo to revision {revision_of(written)} requested"
                )
            else:
                rollout = send_request(session, name, action, ack_timeout=self.ack_timeout)
        except CliError as exc:
            return Outcome(False, exc.message, 409)
        except Forbidden as exc:
            self._permissions.clear()
            return Outcome(False, describe_kube_error(exc)[0], 403)
        except KubeError as exc:
            return Outcome(False, describe_kube_error(exc)[0], 502)
        status = rollout.get("status") or {}
        detail = f"phase {status.get('phase') or '-'}"
        if status.get("reason"):
            detail += f" ({status['reason']})"
        return Outcome(True, f"{namespace}/{name} {_past(action)}: {detail}")


def _past(action: str) -> str:
    return {
        "promote": "promoted",
        "abort": "aborted",
        "retry": "retried",
        "pause": "paused",
        "resume": "resumed",
        "approve": "approved",
    }.get(action, action)


def state_offers(rollout: Obj) -> list[tuple[str, str, bool, str]]:
    """(action, label, possible, reason) from the Rollout's state alone; pure."""
    status = rollout.get("status") or {}
    spec = rollout.get("spec") or {}
    meta = rollout.get("metadata") or {}
    where = f"{meta.get('namespace')}/{meta.get('name')}"
    canary, stable = status.get("canaryRevision"), status.get("stableRevision")
    busy = bool(canary) and canary != stable
    aborted = bool(status.get("aborted"))
    out: list[tuple[str, str, bool, str]] = []
    if busy and not aborted:
        out.append(("promote", "Promote", True, f"move {where} past its current step"))
        out.append(("abort", "Abort", True, f"send all traffic of {where} back to stable {stable}"))
    else:
        idle = "aborted" if aborted else "no new revision is being rolled out"
        out.append(("promote", "Promote", False, f"nothing to promote: {idle}"))
        out.append(("abort", "Abort", False, f"nothing to abort: {idle}"))
    if aborted:
        out.append(("retry", "Retry", True, f"start revision {canary} again from its first step"))
    else:
        out.append(("retry", "Retry", False, "only an aborted revision can be retried"))
    if spec.get("paused"):
        out.append(("resume", "Resume", True, f"let {where} continue (spec.paused=false)"))
    else:
        out.append(("pause", "Pause", True, f"hold {where} where it is (spec.paused=true)"))
    try:
        target = pick_revision(dict(rollout), None)
    except CliError as exc:
        out.append(("undo", "Undo", False, exc.message))
    else:
        out.append(("undo", "Undo", True, f"go back to revision {target}, straight to 100%"))
    approval = pending_approval(rollout)
    if approval:
        out.append(("approve", "Approve", True, f"grant: {approval}"))
    else:
        out.append(("approve", "Approve", False, "no approval is pending"))
    return out
