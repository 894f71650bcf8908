"""Webhook notifications: started, paused, promoted, aborted, rolled back — with evidence.

The reconciler, after writing status, calls ``detect_events(old, new)`` and, for each
event, ``Notifier.notify(notification_for(...), targets_for(policies, event))``. That
call only puts work on a queue and returns at once: delivery happens on the notifier's
own worker threads, so a slow, failing or unreachable webhook never blocks or fails a
reconcile.

Fairness between namespaces: each namespace has its own queue of at most
``notificationsPerNamespace`` (beyond it the notification is dropped and logged), the
workers take the namespaces in turn, and a namespace has at most one delivery in flight.
One delivery, every attempt and backoff included, ends within ``notificationDelivery``
(``controller.limits``), enforced on the socket (``controller.bounded_http``). So a
team whose webhook hangs delays its own notifications only, never another team's.

Each target (``DeliveryPolicy.spec.notifications``) is a generic JSON POST or a
Slack-compatible message (``{"text": ..., "blocks": [...]}``). Its URL lives in a
Secret of the controller's namespace and is read, on the worker thread, through the
``resolve_url`` callable given to ``Notifier`` (the operator passes ``secret_resolver``;
tests pass a dict lookup). A policy of another namespace may use a Secret only when
the Secret is annotated ``deployctl.io/notification-namespaces`` with that namespace
(comma-separated names), so one team cannot send its events to another team's channel.
The URL is a credential (a Slack webhook URL *is* its token): it is never logged, never
put in an error message, and exceptions are not logged with tracebacks (whose locals
could hold it). Each attempt has the target's ``timeout`` (at most what is left of the
delivery's); transient failures (connection errors, timeouts, HTTP 408/429/5xx) are
retried ``retries`` times with exponential backoff (tenacity); other 4xx responses are
not retried. Texts are cut to ``statusMessage`` with a marker.

Errors, drawn once::

    DeliveryError            a failed attempt; ``transient`` says whether to retry
    SecretNotBound           the Secret is not annotated for the policy's namespace
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import requests
import structlog
import tenacity

from controller.api import Rollout, RolloutStatus
from controller.api.policy import DeliveryPolicy, NotificationEvent, NotificationTarget
from controller.api.status import Phase
from controller.bounded_http import BodyRefused, BoundedSession, DeadlineExceeded
from controller.limits import NOTIFICATION_DELIVERY, NOTIFICATIONS_PENDING, Limit, truncate
from controller.logging import REDACTED
from controller.names import REASON_ANNOTATION, REQUESTED_BY_ANNOTATION
from controller.redact import redact_text
from controller.times import timestamp
from strategies.runkeys import RunKey

log = structlog.stdlib.get_logger(__name__)

USER_AGENT = "deployctl-notifier/1"
MAX_EVIDENCE = 10
NAMESPACES_ANNOTATION = "deployctl.io/notification-namespaces"
"""On a webhook Secret: the namespaces whose DeliveryPolicies may use it (comma-separated)."""
# A webhook's reply is not read for anything; a bound keeps a hostile one harmless.
_REPLY_LIMIT = Limit("webhookReply", 64 * 1024, "bytes", "a webhook's reply", "refused")


# --------------------------------------------------------------------------- what to send


@dataclass(frozen=True)
class SecretRef:
    """Where a webhook URL lives: a key of a Secret in ``namespace`` (the controller's),
    named by a policy of ``policy_namespace`` (empty: the controller's own)."""

    namespace: str
    name: str
    key: str
    policy_namespace: str = ""

    def __str__(self) -> str:
        return f"secret {self.namespace}/{self.name} key {self.key}"


class SecretNotBound(Exception):
    """The Secret does not name the policy's namespace in ``NAMESPACES_ANNOTATION``."""


UrlResolver = Callable[[SecretRef], str]


@dataclass(frozen=True)
class Notification:
    event: NotificationEvent
    namespace: str
    rollout: str
    revision: str | None
    phase: str
    reason: str
    message: str
    at: str
    images: tuple[tuple[str, str], ...] = ()
    requested_by: str = ""
    change_reason: str = ""
    evidence: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.rollout}"


_DONE = ("Successful", "Failed", "Inconclusive", "Error")

_EVENT_OUTCOMES: dict[str, NotificationEvent] = {
    "Promoted": "promoted",
    "Aborted": "aborted",
    "RolledBack": "rolledBack",
}


def detect_events(
    before: RolloutStatus | None, after: RolloutStatus
) -> tuple[NotificationEvent, ...]:
    """The notifiable changes from ``before`` to ``after`` (status as read, as written).

    ``started``: a history entry appeared; ``promoted``/``aborted``/``rolledBack``: an
    entry got that outcome; ``paused``: the phase became Paused, or its reason changed;
    ``hookFinished``: a hook's Jobs (preRollout, postPromotion, onAbort) all finished.
    """
    old = before or RolloutStatus()
    seen = {(e.revision, e.started_at): e.outcome for e in old.history}
    events: list[NotificationEvent] = []
    for entry in after.history:
        previous = seen.get((entry.revision, entry.started_at))
        if previous is None:
            events.append("started")
        if entry.outcome in _EVENT_OUTCOMES and previous != entry.outcome:
            events.append(_EVENT_OUTCOMES[entry.outcome])
    if after.phase is Phase.PAUSED and (
        old.phase is not Phase.PAUSED or old.reason != after.reason
    ):
        events.append("paused")
    finished = {(r.key, r.revision, r.started_at) for r in old.analysis_runs if r.phase in _DONE}
    for run in after.analysis_runs:
        if (
            _is_hook(run.key)
            and run.phase in _DONE
            and (run.key, run.revision, run.started_at) not in finished
        ):
            events.append("hookFinished")
    return tuple(dict.fromkeys(events))


def _is_hook(key: str) -> bool:
    """Whether an analysis run is one of spec.hooks' (hook-preRollout, ...)."""
    try:
        return RunKey.parse(key).is_hook
    except ValueError:
        return False


def evidence_of(status: RolloutStatus) -> tuple[str, ...]:
    """Why things are as they are: failed or inconclusive metrics with their last value."""
    lines: list[str] = []
    for run in status.analysis_runs:
        for metric in run.metrics:
            # A finished hook's outcome is news either way (a migration, a smoke test).
            hook_done = _is_hook(run.key) and metric.phase in _DONE
            failing = metric.phase in ("Failed", "Inconclusive", "Error")
            if not failing and not hook_done and not metric.unreachable_since:
                continue
            last = metric.measurements[-1] if metric.measurements else None
            value = f" last value {last.value} at {last.at}" if last and last.value else ""
            detail = f": {metric.message}" if metric.message else ""
            lines.append(redact_text(f"{run.key}/{metric.name} {metric.phase}{value}{detail}"))
    return tuple(lines[:MAX_EVIDENCE])


def notification_for(
    rollout: Rollout, status: RolloutStatus, event: NotificationEvent, *, now: datetime
) -> Notification:
    """A notification of ``event`` from the status just written."""
    entry = status.history[-1] if status.history else None
    annotations = rollout.metadata.annotations
    images = (
        entry.images
        if entry is not None
        else {c.name: c.image for c in rollout.spec.pod_template.spec.containers}
    )
    return Notification(
        event=event,
        namespace=rollout.metadata.namespace or "",
        rollout=rollout.metadata.name or "",
        revision=entry.revision if entry is not None else status.canary_revision,
        phase=str(status.phase or ""),
        reason=status.reason,
        # Masked again here: a message written by an older controller may carry a URL's
        # credentials (controller.redact is the one masking for every way out).
        message=redact_text(status.message),
        at=timestamp(now),
        images=tuple(sorted(images.items())),
        requested_by=entry.requested_by if entry else annotations.get(REQUESTED_BY_ANNOTATION, ""),
        change_reason=entry.reason if entry else annotations.get(REASON_ANNOTATION, ""),
        evidence=evidence_of(status),
    )


def targets_for(
    policies: Sequence[DeliveryPolicy], event: NotificationEvent
) -> list[tuple[SecretRef, NotificationTarget]]:
    """The targets of ``policies`` that want ``event``, with where their URL lives."""
    return [
        (
            SecretRef(
                namespace=policy.metadata.namespace or "",
                name=target.url_from.secret_key_ref.name,
                key=target.url_from.secret_key_ref.key,
                policy_namespace=policy.metadata.namespace or "",
            ),
            target,
        )
        for policy in policies
        for target in policy.spec.notifications
        if event in target.events
    ]


# --------------------------------------------------------------------------- payloads


def generic_payload(n: Notification) -> dict[str, Any]:
    """The generic JSON body: stable field names, for any receiver."""
    return {
        "event": n.event,
        "rollout": {"namespace": n.namespace, "name": n.rollout},
        "revision": n.revision,
        "phase": n.phase,
        "reason": n.reason,
        "message": truncate(n.message),
        "images": dict(n.images),
        "requestedBy": truncate(n.requested_by, 253),
        "changeReason": truncate(n.change_reason),
        "evidence": [truncate(line) for line in n.evidence],
        "at": n.at,
    }


_EMOJI = {
    "started": ":rocket:",
    "paused": ":double_vertical_bar:",
    "promoted": ":white_check_mark:",
    "aborted": ":x:",
    "rolledBack": ":rewind:",
    "hookFinished": ":hook:",
}
_VERB = {
    "started": "started rolling out",
    "paused": "paused",
    "promoted": "promoted",
    "aborted": "aborted",
    "rolledBack": "rolled back",
    "hookFinished": "ran a hook for",
}


def _escape(text: str) -> str:
    """Slack mrkdwn treats &, < and > specially (links, mentions)."""
    return truncate(text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"), 2000)


def slack_payload(n: Notification) -> dict[str, Any]:
    """A Slack incoming-webhook message: a plain ``text`` fallback and Block Kit blocks."""
    images = ", ".join(f"{name}={image}" for name, image in n.images)
    text = (
        f"{_EMOJI[n.event]} {n.key} {_VERB[n.event]} revision {n.revision or '?'}"
        + (f" ({images})" if images else "")
        + (f": {truncate(n.message)}" if n.message else "")
    )
    fields = [
        f"*Phase*\n{n.phase or '-'}",
        f"*Reason*\n{n.reason or '-'}",
        f"*Requested by*\n{n.requested_by or '-'}",
        f"*Why*\n{n.change_reason or '-'}",
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _escape(text)}},
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": _escape(f)} for f in fields],
        },
    ]
    if n.evidence:
        evidence = "\n".join(f"• {truncate(line, 300)}" for line in n.evidence)
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _escape(f"*Evidence*\n{evidence}")},
            }
        )
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": n.at}]})
    return {"text": _escape(text), "blocks": blocks}


def payload_for(target: NotificationTarget, n: Notification) -> dict[str, Any]:
    return slack_payload(n) if target.type == "slack" else generic_payload(n)


# --------------------------------------------------------------------------- sending


class DeliveryError(Exception):
    """A failed attempt. The message never contains the URL."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


Sender = Callable[[str, bytes, float], None]
"""(url, JSON body, timeout seconds) -> None; raises DeliveryError."""


def redact_url(text: str, url: str) -> str:
    """``text`` with ``url`` and its path/query (where webhook tokens live) masked."""
    if url:
        text = text.replace(url, REDACTED)
        parts = urlsplit(url)
        secret_part = parts.path + (f"?{parts.query}" if parts.query else "")
        if len(secret_part) > 1:
            text = text.replace(secret_part, REDACTED)
    return text


def post_json(url: str, body: bytes, timeout: float) -> None:
    """POST ``body``, all of it within ``timeout`` seconds (``BoundedSession``); map every
    failure to ``DeliveryError`` (whose message never holds the URL)."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise DeliveryError("the webhook URL is not an http(s) URL", transient=False)
    session = BoundedSession(deadline=time.monotonic() + timeout, body_limit=_REPLY_LIMIT)
    try:
        response = session.post(
            url,
            data=body,
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
            timeout=timeout,
            allow_redirects=False,
        )
    except (DeadlineExceeded, requests.Timeout):
        raise DeliveryError(f"timed out after {timeout:g}s", transient=True) from None
    except BodyRefused as exc:
        raise DeliveryError(f"the reply was refused: {exc}", transient=False) from None
    except requests.ConnectionError as exc:
        raise DeliveryError(
            redact_url(f"connection failed: {_root_cause(exc)}", url), transient=True
        ) from None
    except (requests.RequestException, OSError, ValueError) as exc:
        raise DeliveryError(f"request failed: {type(exc).__name__}", transient=True) from None
    finally:
        session.close()
    code = response.status_code
    if code >= 400 or 300 <= code < 400:
        raise DeliveryError(f"HTTP {code}", transient=code in (408, 429) or code >= 500)


def _root_cause(exc: BaseException) -> str:
    """The innermost error's ``[Errno N] text`` (urllib3 nests them), without the URL."""
    inner: BaseException = exc
    while inner.__context__ is not None and inner.__context__ is not inner:
        inner = inner.__context__
    match = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(inner))
    return match.group(1).strip() if match else type(inner).__name__


@dataclass(frozen=True)
class DeliveryResult:
    """What became of one notification to one target (for metrics and tests)."""

    target: str
    event: NotificationEvent
    rollout: str
    delivered: bool
    attempts: int
    error: str = ""


@dataclass(frozen=True)
class _Job:
    notification: Notification
    secret: SecretRef
    target: NotificationTarget


class Notifier:
    """Delivers notifications on background threads; ``notify`` never blocks or raises.

    Namespaces are served in turn (see the module docstring): ``max_pending`` bounds
    each namespace's queue, at most one delivery per namespace is in flight, and one
    delivery takes at most ``delivery_deadline`` seconds.
    """

    def __init__(
        self,
        resolve_url: UrlResolver,
        *,
        sender: Sender = post_json,
        workers: int = 4,
        max_pending: int = NOTIFICATIONS_PENDING.int,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        delivery_deadline: float = NOTIFICATION_DELIVERY.value,
        on_result: Callable[[DeliveryResult], None] | None = None,
    ) -> None:
        self._resolve = resolve_url
        self._send = sender
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._deadline = delivery_deadline
        self._max_pending = max_pending
        self._on_result = on_result
        self._cond = threading.Condition()
        self._queues: dict[str, deque[_Job]] = {}
        self._turns: deque[str] = deque()  # namespaces with work and none in flight
        self._busy: set[str] = set()
        self._pending = 0
        self._closing = False
        self._threads = [
            threading.Thread(target=self._work, name=f"notifier-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    # -- the caller's side ----------------------------------------------------------

    def notify(
        self,
        notification: Notification,
        targets: Sequence[tuple[SecretRef, NotificationTarget]],
    ) -> int:
        """Queue ``notification`` for each target; returns how many were queued."""
        queued = 0
        namespace = notification.namespace
        for secret, target in targets:
            job = _Job(notification, secret, target)
            with self._cond:
                waiting = self._queues.setdefault(namespace, deque())
                full = self._closing or len(waiting) >= self._max_pending
                if not full:
                    waiting.append(job)
                    self._pending += 1
                    if namespace not in self._busy and namespace not in self._turns:
                        self._turns.append(namespace)
                    self._cond.notify()
            if full:
                log.warning(
                    "notification dropped: too many pending for this namespace",
                    target=target.name,
                    notify_event=notification.event,
                    rollout=notification.key,
                    limit=str(NOTIFICATIONS_PENDING),
                )
                self._report(job, delivered=False, attempts=0, error="queue full")
                continue
            queued += 1
        return queued

    def wait_idle(self, timeout: float) -> bool:
        """Block until every queued notification is finished (True) or ``timeout`` passes."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the workers after the queued deliveries (waiting at most ``timeout``)."""
        self.wait_idle(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)

    # -- the workers' side ----------------------------------------------------------

    def _next(self) -> _Job | None:
        with self._cond:
            while not self._turns:
                if self._closing:
                    return None
                self._cond.wait()
            namespace = self._turns.popleft()
            job = self._queues[namespace].popleft()
            self._busy.add(namespace)
            return job

    def _finished(self, namespace: str) -> None:
        with self._cond:
            self._busy.discard(namespace)
            self._pending -= 1
            if self._queues.get(namespace):
                self._turns.append(namespace)
            else:
                self._queues.pop(namespace, None)
            self._cond.notify_all()

    def _work(self) -> None:
        while True:
            job = self._next()
            if job is None:
                return
            try:
                self._deliver(job)
            except Exception as exc:  # a bug here must not kill the worker
                log.error(
                    "notification failed unexpectedly",
                    target=job.target.name,
                    error_type=type(exc).__name__,
                )
            finally:
                self._finished(job.notification.namespace)

    def _report(self, job: _Job, *, delivered: bool, attempts: int, error: str) -> None:
        if self._on_result is None:
            return
        result = DeliveryResult(
            target=job.target.name,
            event=job.notification.event,
            rollout=job.notification.key,
            delivered=delivered,
            attempts=attempts,
            error=error,
        )
        try:
            self._on_result(result)
        except Exception as exc:
            log.error("notification result callback failed", error_type=type(exc).__name__)

    def _deliver(self, job: _Job) -> None:
        target, n = job.target, job.notification
        fields = {"target": target.name, "notify_event": n.event, "rollout": n.key}
        try:
            url = self._resolve(job.secret).strip()
        except SecretNotBound as exc:
            error = str(exc)
            log.warning("notification not sent", error=error, **fields)
            self._report(job, delivered=False, attempts=0, error=error)
            return
        except Exception as exc:
            error = f"cannot read the webhook URL from {job.secret}: {type(exc).__name__}"
            log.warning("notification not sent", error=error, **fields)
            self._report(job, delivered=False, attempts=0, error=error)
            return
        body = json.dumps(payload_for(target, n)).encode()
        attempts = 0
        last_error = ""
        deadline = time.monotonic() + self._deadline

        def attempt() -> None:
            nonlocal attempts, last_error
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeliveryError(
                    f"{last_error}; stopped after {attempts} attempt(s): the delivery's "
                    f"{self._deadline:g} s are spent ({NOTIFICATION_DELIVERY})",
                    transient=False,
                )
            attempts += 1
            try:
                self._send(url, body, min(target.timeout, left))
            except DeliveryError as exc:
                last_error = str(exc)
                raise

        def wait(state: tenacity.RetryCallState) -> float:
            # Backoff never sleeps past the delivery's deadline.
            pause = tenacity.wait_exponential(multiplier=self._backoff, max=self._max_backoff)
            return max(0.0, min(pause(state), deadline - time.monotonic()))

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(target.retries + 1),
            wait=wait,
            retry=tenacity.retry_if_exception(
                lambda exc: isinstance(exc, DeliveryError) and exc.transient
            ),
            reraise=True,
        )
        try:
            retrying(attempt)
        except Exception as exc:
            # Sender errors are DeliveryErrors already; anything else is redacted too.
            message = str(exc) if isinstance(exc, DeliveryError) else type(exc).__name__
            error = redact_url(message, url)
            log.warning("notification failed", error=error, attempts=attempts, **fields)
            self._report(job, delivered=False, attempts=attempts, error=error)
            return
        log.info("notification sent", attempts=attempts, **fields)
        self._report(job, delivered=True, attempts=attempts, error="")


def secret_resolver(
    read: Callable[[str, str], tuple[Mapping[str, str], Mapping[str, str]]],
) -> UrlResolver:
    """A resolver from ``read(namespace, name) -> (annotations, decoded data)`` of a
    Secret (the kube adapter), refusing a Secret not bound to the policy's namespace."""

    def resolve(ref: SecretRef) -> str:
        annotations, data = read(ref.namespace, ref.name)
        if ref.policy_namespace and ref.policy_namespace != ref.namespace:
            allowed = {
                n.strip() for n in str(annotations.get(NAMESPACES_ANNOTATION, "")).split(",")
            }
            if ref.policy_namespace not in allowed:
                raise SecretNotBound(
                    f"{ref} may not be used by DeliveryPolicies of namespace "
                    f"{ref.policy_namespace}: the Secret must list it in the annotation "
                    f"{NAMESPACES_ANNOTATION} (kubectl -n {ref.namespace} annotate secret "
                    f"{ref.name} {NAMESPACES_ANNOTATION}={ref.policy_namespace})"
                )
        if ref.key not in data:
            raise KeyError(f"{ref} has no such key")
        return data[ref.key]

    return resolve
