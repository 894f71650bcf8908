"""Webhook notifications: started, paused, promoted, aborted, rolled back — with evidence.

The reconciler, after writing status, calls ``detect_events(old, new)`` and, for each
event, ``Notifier.notify(notification_for(...), targets_for(policies, event))``. That
call only puts work on a bounded queue and returns at once: delivery happens on the
notifier's own worker threads, so a slow, failing or unreachable webhook never blocks
or fails a reconcile (when the queue is full the notification is dropped and logged).

Each target (``DeliveryPolicy.spec.notifications``) is a generic JSON POST or a
Slack-compatible message (``{"text": ..., "blocks": [...]}``). Its URL lives in a
Secret and is read, on the worker thread, through the ``resolve_url`` callable given to
``Notifier`` (the operator passes a kube-backed resolver; tests pass a dict lookup).
The URL is a credential (a Slack webhook URL *is* its token): it is never logged, never
put in an error message, and exceptions are not logged with tracebacks (whose locals
could hold it). Each attempt has the target's ``timeout``; transient failures
(connection errors, timeouts, HTTP 408/429/5xx) are retried ``retries`` times with
exponential backoff (tenacity); other 4xx responses are not retried.

Errors, drawn once::

    DeliveryError            a failed attempt; ``transient`` says whether to retry
"""

from __future__ import annotations

import json
import queue
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import structlog
import tenacity

from controller.api import Rollout, RolloutStatus
from controller.api.policy import DeliveryPolicy, NotificationEvent, NotificationTarget
from controller.api.status import Phase
from controller.logging import REDACTED
from controller.names import REASON_ANNOTATION, REQUESTED_BY_ANNOTATION
from controller.redact import redact_text
from controller.times import timestamp

log = structlog.stdlib.get_logger(__name__)

USER_AGENT = "deployctl-notifier/1"
MAX_EVIDENCE = 10
MAX_TEXT = 2000


# --------------------------------------------------------------------------- what to send


@dataclass(frozen=True)
class SecretRef:
    """Where a webhook URL lives: a key of a Secret in the policy's namespace."""

    namespace: str
    name: str
    key: str

    def __str__(self) -> str:
        return f"secret {self.namespace}/{self.name} key {self.key}"


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


HOOK_PREFIX = "hook-"  # analysis runs of spec.hooks (hook-preRollout, ...)
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
            run.key.startswith(HOOK_PREFIX)
            and run.phase in _DONE
            and (run.key, run.revision, run.started_at) not in finished
        ):
            events.append("hookFinished")
    return tuple(dict.fromkeys(events))


def evidence_of(status: RolloutStatus) -> tuple[str, ...]:
    """Why things are as they are: failed or inconclusive metrics with their last value."""
    lines: list[str] = []
    for run in status.analysis_runs:
        for metric in run.metrics:
            # A finished hook's outcome is news either way (a migration, a smoke test).
            hook_done = run.key.startswith(HOOK_PREFIX) and metric.phase in _DONE
            if metric.phase not in ("Failed", "Inconclusive", "Error") and not hook_done:
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
        else {c.name: c.image for c in rollout.spec.template.spec.containers}
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
        "message": n.message,
        "images": dict(n.images),
        "requestedBy": n.requested_by,
        "changeReason": n.change_reason,
        "evidence": list(n.evidence),
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
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")[:MAX_TEXT]


def slack_payload(n: Notification) -> dict[str, Any]:
    """A Slack incoming-webhook message: a plain ``text`` fallback and Block Kit blocks."""
    images = ", ".join(f"{name}={image}" for name, image in n.images)
    text = (
        f"{_EMOJI[n.event]} {n.key} {_VERB[n.event]} revision {n.revision or '?'}"
        + (f" ({images})" if images else "")
        + (f": {n.message}" if n.message else "")
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
        evidence = "\n".join(f"• {line}" for line in n.evidence)
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
    """POST ``body`` with the standard library; map every failure to ``DeliveryError``."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise DeliveryError("the webhook URL is not an http(s) URL", transient=False)
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            response.read(65536)
    except urllib.error.HTTPError as exc:
        code = exc.code
        exc.close()
        raise DeliveryError(f"HTTP {code}", transient=code in (408, 429) or code >= 500) from None
    except TimeoutError:
        raise DeliveryError(f"timed out after {timeout:g}s", transient=True) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            raise DeliveryError(f"timed out after {timeout:g}s", transient=True) from None
        raise DeliveryError(
            redact_url(f"connection failed: {reason}", url), transient=True
        ) from None
    except OSError as exc:
        raise DeliveryError(
            redact_url(f"connection failed: {type(exc).__name__}: {exc}", url), transient=True
        ) from None


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
    """Delivers notifications on background threads; ``notify`` never blocks or raises."""

    def __init__(
        self,
        resolve_url: UrlResolver,
        *,
        sender: Sender = post_json,
        workers: int = 2,
        max_pending: int = 256,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        on_result: Callable[[DeliveryResult], None] | None = None,
    ) -> None:
        self._resolve = resolve_url
        self._send = sender
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._on_result = on_result
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=max_pending)
        self._pending = 0
        self._idle = threading.Condition()
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
        for secret, target in targets:
            job = _Job(notification, secret, target)
            with self._idle:
                self._pending += 1
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                self._done()
                log.warning(
                    "notification dropped: too many pending",
                    target=target.name,
                    notify_event=notification.event,
                    rollout=notification.key,
                )
                self._report(job, delivered=False, attempts=0, error="queue full")
                continue
            queued += 1
        return queued

    def wait_idle(self, timeout: float) -> bool:
        """Block until every queued notification is finished (True) or ``timeout`` passes."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the workers after the queued deliveries (bounded by ``timeout`` each)."""
        for _ in self._threads:
            try:
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                break
        for thread in self._threads:
            thread.join(timeout)

    # -- the workers' side ----------------------------------------------------------

    def _done(self) -> None:
        with self._idle:
            self._pending -= 1
            self._idle.notify_all()

    def _work(self) -> None:
        while True:
            job = self._queue.get()
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
                self._done()

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
        except Exception as exc:
            error = f"cannot read the webhook URL from {job.secret}: {type(exc).__name__}"
            log.warning("notification not sent", error=error, **fields)
            self._report(job, delivered=False, attempts=0, error=error)
            return
        body = json.dumps(payload_for(target, n)).encode()
        attempts = 0

        def attempt() -> None:
            nonlocal attempts
            attempts += 1
            self._send(url, body, target.timeout)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(target.retries + 1),
            wait=tenacity.wait_exponential(multiplier=self._backoff, max=self._max_backoff),
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


def secret_resolver(read: Callable[[str, str], Mapping[str, str]]) -> UrlResolver:
    """A resolver from ``read(namespace, name) -> decoded Secret data`` (kube adapter)."""

    def resolve(ref: SecretRef) -> str:
        data = read(ref.namespace, ref.name)
        if ref.key not in data:
            raise KeyError(f"{ref} has no such key")
        return data[ref.key]

    return resolve
