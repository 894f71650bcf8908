"""Requests to the apiserver: one place that sends, counts, maps errors and retries.

``Kube`` (``controller.kube.resources``) is a ``Transport`` with typed methods per
resource; everything it sends goes through ``_request`` (or ``_send`` for a watch).
Requests use the official client's ``ApiClient`` (auth, TLS, proxies from the kubeconfig
or the in-cluster service account) as raw JSON, so objects are exactly what the
apiserver sent: no generated-model round trip that would drop unknown fields of our
custom resources.

Retries live here and nowhere else (never around a whole reconcile): a ``Transient``
error is retried with exponential backoff and jitter (tenacity), honouring
``Retry-After``, for a bounded number of attempts. ``Conflict`` is the exception:
retrying the same patch would fail the same way, so it is surfaced for the caller to
re-read fresh state. Watches are never retried here; the informer owns reconnection.

Every attempt is counted in ``deployctl_api_requests_total{verb,resource,code}``.
Bearer tokens never reach a log line or an exception message: we log verb, resource,
namespace, name and status only, never request headers or URLs with credentials.
"""

from __future__ import annotations

import copy
import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import structlog
import tenacity
import urllib3
from kubernetes import client as k8s

from controller.kube.bodies import MERGE_PATCH, delete_options
from controller.kube.errors import (
    NotFound,
    Transient,
    describe,
    error_from_status,
    retryable,
)
from controller.kube.kinds import KindRef, Obj
from controller.kube.watch import WatchStream
from controller.metrics import API_REQUESTS

log = structlog.stdlib.get_logger(__name__)

_LIST_PAGE_SIZE = 500


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff for transient errors inside the adapter."""

    attempts: int = 5
    initial: float = 0.2
    maximum: float = 5.0
    # Retry-After is honoured up to this many seconds: a worker thread blocked longer
    # inside one call would starve other keys; the caller's requeue can wait instead.
    max_retry_after: float = 10.0
    jitter: float = 0.2

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        backoff = min(self.initial * 2.0 ** (attempt - 1), self.maximum)
        backoff *= 1 + random.uniform(-self.jitter, self.jitter)
        if retry_after is not None:
            backoff = max(backoff, min(retry_after, self.max_retry_after))
        return max(0.0, backoff)


DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(attempts=1)


class Listing(NamedTuple):
    """The result of a list: items (with kind/apiVersion filled in) and the list's RV."""

    items: list[Obj]
    resource_version: str


class Transport:
    """Sends requests for ``Kube``: the generic verbs, with retries and error mapping."""

    def __init__(
        self,
        api_client: k8s.ApiClient,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        request_timeout: float = 30.0,
        connect_timeout: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._api: Any = api_client
        self.retry = retry
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self._sleep = sleep

    def close(self) -> None:
        self._api.close()

    def __repr__(self) -> str:
        # Never the configuration: it holds the bearer token.
        return f"{type(self).__name__}(host={self._api.configuration.host!r})"

    @property
    def server(self) -> str:
        """The API server's URL as configured (no request is sent)."""
        return str(self._api.configuration.host)

    # ------------------------------------------------------------------ sending

    def _request(
        self,
        verb: str,
        kind: KindRef,
        *,
        method: str,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str | None = None,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> Obj:
        """One API call with retries on Transient (not Conflict); returns the JSON body."""
        policy = retry or self.retry

        def attempt() -> Obj:
            response = self._send(
                verb,
                kind,
                method=method,
                namespace=namespace,
                name=name,
                subresource=subresource,
                query=query,
                body=body,
                content_type=content_type,
                read_timeout=timeout or self.request_timeout,
            )
            data = response.read()
            if not 200 <= response.status < 300:
                raise error_from_status(
                    response.status,
                    body=data,
                    headers=response.headers,
                    verb=verb,
                    kind=kind,
                    namespace=namespace,
                    name=name,
                    subresource=subresource,
                )
            parsed = json.loads(data) if data else {}
            return parsed if isinstance(parsed, dict) else {"value": parsed}

        if policy.attempts <= 1:
            return attempt()

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            retry_after = exc.retry_after if isinstance(exc, Transient) else None
            return policy.delay(state.attempt_number, retry_after)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "kubernetes api call failed, retrying",
                verb=verb,
                resource=kind.resource,
                namespace=namespace,
                name=name,
                code=exc.code if isinstance(exc, Transient) else None,
                attempt=state.attempt_number,
                delay=round(state.upcoming_sleep, 3),
            )

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(policy.attempts),
            wait=wait,
            retry=tenacity.retry_if_exception(retryable),
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        result: Obj = retrying(attempt)
        return result

    def _send(
        self,
        verb: str,
        kind: KindRef,
        *,
        method: str,
        namespace: str | None,
        name: str | None,
        subresource: str | None,
        query: Mapping[str, str] | None,
        body: Any,
        content_type: str | None,
        read_timeout: float,
    ) -> Any:
        """Send one HTTP request; count it; map failures without a response to Transient."""
        resource_label = kind.plural + (f"/{subresource}" if subresource else "")
        headers = {"Accept": "application/json"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        elif body is not None:
            headers["Content-Type"] = "application/json"
        serialized = self._api.param_serialize(
            method=method,
            resource_path=kind.path(namespace=namespace, name=name, subresource=subresource),
            query_params=list((query or {}).items()),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self._api.call_api(
                *serialized, _request_timeout=(self.connect_timeout, read_timeout)
            )
        except (urllib3.exceptions.HTTPError, OSError, k8s.ApiException) as exc:
            # No HTTP status: connection refused/reset, TLS failure, timeout.
            API_REQUESTS.labels(verb=verb, resource=resource_label, code="error").inc()
            raise Transient(
                f"{describe(verb, kind, namespace, name)}: no response ({type(exc).__name__})",
                verb=verb,
                resource=kind.resource,
            ) from exc
        API_REQUESTS.labels(verb=verb, resource=resource_label, code=str(response.status)).inc()
        return response

    # ------------------------------------------------------------------ generic verbs

    def list_objects(
        self,
        kind: KindRef,
        namespace: str | None = None,
        label_selector: str | None = None,
        *,
        field_selector: str | None = None,
    ) -> Listing:
        """All objects of ``kind`` (paginated), with the list's resourceVersion."""
        items: list[Obj] = []
        query: dict[str, str] = {"limit": str(_LIST_PAGE_SIZE)}
        if label_selector:
            query["labelSelector"] = label_selector
        if field_selector:
            query["fieldSelector"] = field_selector
        resource_version = ""
        while True:
            page = self._request("list", kind, method="GET", namespace=namespace, query=query)
            meta = page.get("metadata") or {}
            # Pages of one list share the snapshot of the first page's resourceVersion.
            resource_version = resource_version or str(meta.get("resourceVersion", ""))
            for item in page.get("items") or []:
                item.setdefault("apiVersion", kind.api_version)
                item.setdefault("kind", kind.kind)
                items.append(item)
            token = meta.get("continue")
            if not token:
                return Listing(items, resource_version)
            query = {**query, "continue": str(token)}

    def watch_objects(
        self,
        kind: KindRef,
        namespace: str | None = None,
        *,
        resource_version: str,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> WatchStream:
        """Open a watch from ``resource_version`` (bookmarks on); raises on open failure.

        The server ends the stream after ``timeout_seconds``; the informer re-opens it.
        """
        query: dict[str, str] = {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "resourceVersion": resource_version,
            "timeoutSeconds": str(timeout_seconds),
        }
        if label_selector:
            query["labelSelector"] = label_selector
        if field_selector:
            query["fieldSelector"] = field_selector
        response = self._send(
            "watch",
            kind,
            method="GET",
            namespace=namespace,
            name=None,
            subresource=None,
            query=query,
            body=None,
            content_type=None,
            # Some slack past the server's own timeout, so the server ends it cleanly.
            read_timeout=timeout_seconds + 15,
        )
        if not 200 <= response.status < 300:
            data = response.read()
            raise error_from_status(
                response.status,
                body=data,
                headers=response.headers,
                verb="watch",
                kind=kind,
                namespace=namespace,
            )
        return WatchStream(response.response, kind=kind, namespace=namespace)

    def get(self, kind: KindRef, namespace: str | None, name: str) -> Obj:
        """A fresh read from the apiserver (the reconciler reads from informers instead)."""
        obj = self._request("get", kind, method="GET", namespace=namespace, name=name)
        obj.setdefault("apiVersion", kind.api_version)
        obj.setdefault("kind", kind.kind)
        return obj

    def _merge_patch(
        self,
        kind: KindRef,
        namespace: str | None,
        name: str,
        patch: Mapping[str, Any],
        *,
        resource_version: str | None,
        subresource: str | None = None,
    ) -> Obj:
        body = copy.deepcopy(dict(patch))
        if resource_version is not None:
            # A precondition: the apiserver answers 409 if the object changed since.
            body.setdefault("metadata", {})["resourceVersion"] = resource_version
        return self._request(
            "patch",
            kind,
            method="PATCH",
            namespace=namespace,
            name=name,
            subresource=subresource,
            body=body,
            content_type=MERGE_PATCH,
        )

    def _delete(
        self,
        kind: KindRef,
        namespace: str,
        name: str,
        *,
        uid: str | None,
        propagation: str = "Background",
    ) -> bool:
        """Delete (dependents follow in the background); False if it was already gone.

        ``uid`` is a precondition: never delete a same-named successor by mistake.
        """
        options = delete_options(uid=uid, propagation=propagation)
        try:
            self._request(
                "delete", kind, method="DELETE", namespace=namespace, name=name, body=options
            )
        except NotFound:
            return False
        return True
