"""The Kubernetes adapter: the only module of ``controller/`` that imports ``kubernetes``.

Callers: ``controller.informer`` (list/watch), ``controller.leader`` (Leases), the
reconciler (Rollout status and patches, ReplicaSets, Service selectors, HTTPRoute
weights, Events) and the CLI. They get plain JSON dicts in and out, typed small methods,
and our own exceptions; nothing of the client library leaks past this module.

Every request goes through the official client's ``ApiClient`` (auth, TLS, proxies from
the kubeconfig or the in-cluster service account) as raw JSON, so objects are exactly
what the apiserver sent: no generated-model round trip that would drop unknown fields of
our custom resources.

Errors, mapped once here at the boundary::

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

Retries live here and nowhere else (never around a whole reconcile): a ``Transient``
error is retried with exponential backoff and jitter, honouring ``Retry-After``, for a
bounded number of attempts. ``Conflict`` is the exception: retrying the same patch would
fail the same way, so it is surfaced for the caller to re-read fresh state. Watches are
never retried here; the informer owns reconnection.

Every attempt is counted in ``deployctl_api_requests_total{verb,resource,code}``.
Bearer tokens never reach a log line or an exception message: we log verb, resource,
namespace, name and status only, never request headers or URLs with credentials.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import structlog
import tenacity
import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.watch.watch import iter_resp_lines as _untyped_iter_resp_lines

from controller.metrics import API_REQUESTS

Obj = dict[str, Any]

# The client's functions carry no annotations; give the few we call a type once, here.
iter_resp_lines: Callable[[Any], Iterator[str]] = _untyped_iter_resp_lines
_load_kube_config: Callable[..., None] = k8s_config.load_kube_config
_load_incluster_config: Callable[..., None] = k8s_config.load_incluster_config
_list_contexts: Callable[..., tuple[list[dict[str, Any]], dict[str, Any]]] = (
    k8s_config.list_kube_config_contexts
)
_load_kube_config_from_dict: Callable[..., None] = k8s_config.load_kube_config_from_dict

log = structlog.stdlib.get_logger(__name__)

COMPONENT = "deployctl"
MERGE_PATCH = "application/merge-patch+json"
MAX_EVENT_MESSAGE = 1024
_EVENT_CACHE_SIZE = 4096
_LIST_PAGE_SIZE = 500


# --------------------------------------------------------------------------- kinds


@dataclass(frozen=True)
class KindRef:
    """Where a kind lives in the API: group/version, plural resource name, kind."""

    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def resource(self) -> str:
        """``plural.group`` as RBAC and error messages spell it (``replicasets.apps``)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path(
        self,
        *,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str | None = None,
    ) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{name}"
            if subresource is not None:
                base += f"/{subresource}"
        return base


ROLLOUTS = KindRef("deployctl.io", "v1alpha1", "rollouts", "Rollout")
ANALYSIS_TEMPLATES = KindRef("deployctl.io", "v1alpha1", "analysistemplates", "AnalysisTemplate")
DELIVERY_POLICIES = KindRef("deployctl.io", "v1alpha1", "deliverypolicies", "DeliveryPolicy")
REPLICASETS = KindRef("apps", "v1", "replicasets", "ReplicaSet")
SERVICES = KindRef("", "v1", "services", "Service")
PODS = KindRef("", "v1", "pods", "Pod")
HTTPROUTES = KindRef("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")
LEASES = KindRef("coordination.k8s.io", "v1", "leases", "Lease")
EVENTS = KindRef("", "v1", "events", "Event")
SECRETS = KindRef("", "v1", "secrets", "Secret")
JOBS = KindRef("batch", "v1", "jobs", "Job")
CONFIGMAPS = KindRef("", "v1", "configmaps", "ConfigMap")
RELEASES = KindRef("deployctl.io", "v1alpha1", "releases", "Release")
CLUSTER_TARGETS = KindRef("deployctl.io", "v1alpha1", "clustertargets", "ClusterTarget")


def object_key(obj: Mapping[str, Any]) -> str:
    """``namespace/name`` (or ``name`` for cluster-scoped objects), as the queue uses."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    name = str(meta.get("name", ""))
    return f"{namespace}/{name}" if namespace else name


# --------------------------------------------------------------------------- errors


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


def _kubeconfig_problem(path: str | None, exc: BaseException) -> str:
    where = path or "$KUBECONFIG or ~/.kube/config"
    detail = str(exc).strip() or type(exc).__name__
    return f"cannot load the kubeconfig ({where}): {detail}"


@dataclass(frozen=True)
class KubeconfigContext:
    """What the current (or named) kubeconfig context says, as kubectl would read it."""

    name: str
    namespace: str
    user: str


def kubeconfig_context(path: str | None = None, context: str | None = None) -> KubeconfigContext:
    """The context's name, default namespace (``default`` if unset) and user entry name."""
    try:
        contexts, active = _list_contexts(config_file=path)
    except (k8s_config.ConfigException, OSError, ValueError, TypeError) as exc:
        raise KubeconfigError(_kubeconfig_problem(path, exc)) from None
    chosen = active
    if context is not None:
        by_name = {c.get("name"): c for c in contexts or []}
        if context not in by_name:
            known = ", ".join(sorted(str(n) for n in by_name)) or "none"
            raise KubeconfigError(f"no context {context!r} in the kubeconfig (known: {known})")
        chosen = by_name[context]
    details = (chosen or {}).get("context") or {}
    return KubeconfigContext(
        name=str((chosen or {}).get("name", "")),
        namespace=str(details.get("namespace") or "default"),
        user=str(details.get("user") or ""),
    )


# --------------------------------------------------------------------------- retry policy


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


NO_RETRY = RetryPolicy(attempts=1)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, Transient) and not isinstance(exc, Conflict)


# --------------------------------------------------------------------------- helpers


def format_micro_time(moment: datetime) -> str:
    """A MicroTime as the apiserver accepts it: always 6 fractional digits, UTC, ``Z``.

    The client library drops the fraction when microseconds are 0, which the apiserver
    rejects with 400 for MicroTime fields (Lease renewTime, Event eventTime).
    """
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_time(moment: datetime) -> str:
    """A metav1.Time: RFC 3339 with whole seconds, UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> datetime:
    """Parse a Time or MicroTime written by the apiserver or by us."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> Obj:
    """The RFC 7386 JSON merge patch turning ``old`` into ``new``.

    Removed keys become ``None`` (delete), nested dicts recurse, lists and scalars are
    replaced whole. An empty result means "nothing to write".
    """
    patch: Obj = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            nested = merge_patch(before, value)
            if nested:
                patch[key] = nested
        elif key not in old or before != value:
            patch[key] = copy.deepcopy(value)
    return patch


def owner_reference(owner: Mapping[str, Any]) -> Obj:
    """A controller ownerReference to ``owner`` (a Rollout as read from the API).

    ``blockOwnerDeletion`` makes foreground deletion of the Rollout wait for its
    ReplicaSets; it needs RBAC ``update`` on ``rollouts/finalizers``.
    """
    meta = owner["metadata"]
    return {
        "apiVersion": owner.get("apiVersion", ROLLOUTS.api_version),
        "kind": owner.get("kind", ROLLOUTS.kind),
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


class Listing(NamedTuple):
    """The result of a list: items (with kind/apiVersion filled in) and the list's RV."""

    items: list[Obj]
    resource_version: str


def _terminating(body: bytes | str | None) -> bool:
    """Whether a Status body carries the NamespaceTerminating cause."""
    try:
        status = json.loads(body or b"")
    except (TypeError, ValueError):
        return False
    details = status.get("details") if isinstance(status, dict) else None
    causes = details.get("causes") if isinstance(details, dict) else None
    # The cause's ``reason`` (metav1.CauseType) is NamespaceTerminating.
    return any(
        isinstance(c, dict) and "NamespaceTerminating" in (c.get("reason"), c.get("type"))
        for c in causes or []
    )


def _status_fields(body: bytes | str | None) -> tuple[str, str, float | None]:
    """(message, reason, retryAfterSeconds) from a ``Status`` body, tolerating junk."""
    if not body:
        return "", "", None
    try:
        status = json.loads(body)
    except (TypeError, ValueError):
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        return text[:300], "", None
    if not isinstance(status, dict):
        return "", "", None
    details = status.get("details") or {}
    retry = details.get("retryAfterSeconds") if isinstance(details, dict) else None
    return (
        str(status.get("message", "")),
        str(status.get("reason", "")),
        float(retry) if isinstance(retry, int | float) else None,
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


def _describe(verb: str, kind: KindRef, namespace: str | None, name: str | None) -> str:
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
    message, reason, retry_details = _status_fields(body)
    retry_after = _retry_after_header(headers) or retry_details
    resource = kind.resource + (f"/{subresource}" if subresource else "")
    what = _describe(verb, kind, namespace, name)
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
    if code == 403 and _terminating(body):
        return NamespaceTerminating(f"{what}: namespace {namespace} is being deleted", **common)
    if code == 403:
        return Forbidden(f"forbidden: cannot {what}: {message}", **common)
    return Permanent(text, **common)


# --------------------------------------------------------------------------- watch stream


class WatchStream:
    """One open watch: iterate for ``(type, object)``; ``close()`` from any thread.

    Types are ADDED, MODIFIED, DELETED and BOOKMARK (only ``metadata.resourceVersion``
    is meaningful in a bookmark). An ERROR event raises: ``Gone`` for 410, the mapped
    error otherwise. A stream dropped by the network raises ``Transient``; a stream the
    server ended (its timeout) simply stops. After ``close()`` iteration just stops.
    """

    def __init__(
        self,
        response: urllib3.BaseHTTPResponse,
        *,
        kind: KindRef,
        namespace: str | None,
    ) -> None:
        self._response = response
        self._kind = kind
        self._namespace = namespace
        self._closed = threading.Event()

    def __iter__(self) -> Iterator[tuple[str, Obj]]:
        try:
            for line in iter_resp_lines(self._response):
                if self._closed.is_set():
                    return
                if not line:
                    continue
                yield self._parse(line)
        except Exception as exc:
            if self._closed.is_set():
                return  # closed by us: urllib3 may fail in odd ways reading a closed socket
            if isinstance(exc, KubeError) or not isinstance(
                exc, urllib3.exceptions.HTTPError | OSError | ValueError
            ):
                raise
            raise Transient(
                f"watch {self._kind.resource} stream broke: {type(exc).__name__}",
                verb="watch",
                resource=self._kind.resource,
            ) from exc
        finally:
            self.close()

    def _parse(self, line: str) -> tuple[str, Obj]:
        try:
            event = json.loads(line)
            event_type = str(event["type"])
            obj = event["object"]
        except (ValueError, KeyError, TypeError) as exc:
            raise Transient(
                f"watch {self._kind.resource}: undecodable event",
                verb="watch",
                resource=self._kind.resource,
            ) from exc
        if event_type == "ERROR":
            code = int(obj.get("code") or 500)
            raise error_from_status(
                code,
                body=json.dumps(obj),
                headers=None,
                verb="watch",
                kind=self._kind,
                namespace=self._namespace,
            )
        return event_type, obj

    def close(self) -> None:
        """Stop the stream; safe from another thread while a reader is blocked."""
        if self._closed.is_set():
            return
        self._closed.set()
        try:
            # shutdown() unblocks a read in progress on another thread (urllib3 >= 2.3).
            shutdown = getattr(self._response, "shutdown", None)
            if shutdown is not None:
                shutdown()
            self._response.close()
        except (OSError, urllib3.exceptions.HTTPError, ValueError, RuntimeError):
            # Already released to the pool (the server ended the stream) or broken:
            # nothing left to close.
            pass

    @property
    def closed(self) -> bool:
        return self._closed.is_set()


# --------------------------------------------------------------------------- the adapter


class Kube:
    """Typed access to the API objects deployctl reads and writes."""

    def __init__(
        self,
        api_client: k8s.ApiClient,
        *,
        retry: RetryPolicy = RetryPolicy(),
        request_timeout: float = 30.0,
        connect_timeout: float = 5.0,
        instance: str = "",
        sleep: Callable[[float], None] = time.sleep,
        utcnow: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._api: Any = api_client
        self.retry = retry
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self.instance = instance
        self._sleep = sleep
        self._utcnow = utcnow
        self._event_counts: OrderedDict[str, int] = OrderedDict()
        self._event_lock = threading.Lock()

    @classmethod
    def from_kubeconfig(
        cls, path: str | None = None, context: str | None = None, **kwargs: Any
    ) -> Kube:
        """From a kubeconfig file (``None``: ``$KUBECONFIG`` or ``~/.kube/config``)."""
        configuration = k8s.Configuration()
        try:
            _load_kube_config(config_file=path, context=context, client_configuration=configuration)
        except (k8s_config.ConfigException, OSError, ValueError, TypeError) as exc:
            raise KubeconfigError(_kubeconfig_problem(path, exc)) from None
        return cls(k8s.ApiClient(configuration), **kwargs)

    @classmethod
    def from_kubeconfig_dict(
        cls, config: Mapping[str, Any], context: str | None = None, **kwargs: Any
    ) -> Kube:
        """From a kubeconfig already read and checked (a ClusterTarget's Secret: see
        ``controller.release.credentials``); inline certificates go to temporary files.

        No retries below ours (urllib3 retries a timed-out read three times by default):
        a member cluster that does not answer costs one timeout per attempt, no more.
        """
        configuration = k8s.Configuration()
        configuration.retries = 0
        try:
            _load_kube_config_from_dict(
                config_dict=copy.deepcopy(dict(config)),
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
        except (k8s_config.ConfigException, OSError, ValueError, TypeError, KeyError) as exc:
            # The type and the loader's own words (which name keys, never values).
            raise KubeconfigError(
                f"cannot load the kubeconfig: {type(exc).__name__}: {str(exc)[:200]}"
            ) from None
        return cls(k8s.ApiClient(configuration), **kwargs)

    @classmethod
    def in_cluster(cls, **kwargs: Any) -> Kube:
        """From the pod's service account (token re-read as it rotates)."""
        configuration = k8s.Configuration()
        _load_incluster_config(client_configuration=configuration)
        return cls(k8s.ApiClient(configuration), **kwargs)

    def close(self) -> None:
        self._api.close()

    def __repr__(self) -> str:
        # Never the configuration: it holds the bearer token.
        return f"Kube(host={self._api.configuration.host!r})"

    # ------------------------------------------------------------------ plumbing

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
                code=getattr(exc, "code", None),
                attempt=state.attempt_number,
                delay=round(state.upcoming_sleep, 3),
            )

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(policy.attempts),
            wait=wait,
            retry=tenacity.retry_if_exception(_retryable),
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
                f"{_describe(verb, kind, namespace, name)}: no response ({type(exc).__name__})",
                verb=verb,
                resource=kind.resource,
            ) from exc
        API_REQUESTS.labels(verb=verb, resource=resource_label, code=str(response.status)).inc()
        return response

    # ------------------------------------------------------------------ list / watch / get

    def list_objects(
        self,
        kind: KindRef,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> Listing:
        """All objects of ``kind`` (paginated), with the list's resourceVersion."""
        items: list[Obj] = []
        query: dict[str, str] = {"limit": str(_LIST_PAGE_SIZE)}
        if label_selector:
            query["labelSelector"] = label_selector
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

    # ------------------------------------------------------------------ rollouts

    def get_rollout(self, namespace: str, name: str) -> Obj:
        return self.get(ROLLOUTS, namespace, name)

    def patch_rollout(
        self, namespace: str, name: str, patch: Mapping[str, Any], *, resource_version: str
    ) -> Obj:
        """Merge-patch spec/metadata (e.g. consume a promote annotation) with an RV check."""
        return self._merge_patch(
            ROLLOUTS, namespace, name, patch, resource_version=resource_version
        )

    def patch_rollout_status(
        self,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> Obj:
        """Merge-patch ``status`` through the status subresource (``None`` deletes a key).

        Only the status changes: the apiserver ignores spec here and does not bump
        ``metadata.generation``. Build ``status`` with ``merge_patch(old, new)``.
        """
        return self._merge_patch(
            ROLLOUTS,
            namespace,
            name,
            {"status": dict(status)},
            resource_version=resource_version,
            subresource="status",
        )

    # ------------------------------------------------------------------ replicasets

    def create_replicaset(
        self, namespace: str, body: Mapping[str, Any], *, owner: Mapping[str, Any]
    ) -> Obj:
        """Create a ReplicaSet controlled by ``owner`` (garbage-collected with it)."""
        replicaset = copy.deepcopy(dict(body))
        replicaset.setdefault("apiVersion", REPLICASETS.api_version)
        replicaset.setdefault("kind", REPLICASETS.kind)
        meta = replicaset.setdefault("metadata", {})
        meta["namespace"] = namespace
        meta["ownerReferences"] = [owner_reference(owner)]
        return self._request(
            "create", REPLICASETS, method="POST", namespace=namespace, body=replicaset
        )

    def patch_replicaset(
        self,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> Obj:
        return self._merge_patch(
            REPLICASETS, namespace, name, patch, resource_version=resource_version
        )

    def scale_replicaset(
        self, namespace: str, name: str, replicas: int, *, resource_version: str | None = None
    ) -> Obj:
        return self.patch_replicaset(
            namespace, name, {"spec": {"replicas": replicas}}, resource_version=resource_version
        )

    def delete_replicaset(
        self,
        namespace: str,
        name: str,
        *,
        uid: str | None = None,
        propagation: str = "Background",
    ) -> bool:
        """Delete (pods follow in the background); False if it was already gone.

        ``uid`` is a precondition: never delete a same-named successor by mistake.
        """
        options: Obj = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": propagation,
        }
        if uid is not None:
            options["preconditions"] = {"uid": uid}
        try:
            self._request(
                "delete", REPLICASETS, method="DELETE", namespace=namespace, name=name, body=options
            )
        except NotFound:
            return False
        return True

    # ------------------------------------------------------------------ jobs

    def create_job(
        self, namespace: str, body: Mapping[str, Any], *, owner: Mapping[str, Any]
    ) -> Obj | None:
        """Create a Job owned by ``owner``; None when the name is taken already.

        Job names are derived from what they check, so an AlreadyExists means an earlier
        pass (perhaps of a controller since restarted) created this very Job.
        """
        job = copy.deepcopy(dict(body))
        job.setdefault("apiVersion", JOBS.api_version)
        job.setdefault("kind", JOBS.kind)
        meta = job.setdefault("metadata", {})
        meta["namespace"] = namespace
        meta["ownerReferences"] = [owner_reference(owner)]
        try:
            return self._request("create", JOBS, method="POST", namespace=namespace, body=job)
        except AlreadyExists:
            return None

    def delete_job(self, namespace: str, name: str, *, uid: str | None = None) -> bool:
        """Delete a finished Job and its pods; False if it was already gone."""
        options: Obj = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": "Background",
        }
        if uid is not None:
            options["preconditions"] = {"uid": uid}
        try:
            self._request(
                "delete", JOBS, method="DELETE", namespace=namespace, name=name, body=options
            )
        except NotFound:
            return False
        return True

    # ------------------------------------------------------------------ services / routes

    def patch_service_selector(
        self,
        namespace: str,
        name: str,
        selector: Mapping[str, str | None],
        *,
        resource_version: str | None = None,
    ) -> Obj:
        """Merge ``selector`` into the Service's selector (a ``None`` value removes a key)."""
        return self._merge_patch(
            SERVICES,
            namespace,
            name,
            {"spec": {"selector": dict(selector)}},
            resource_version=resource_version,
        )

    def get_httproute(self, namespace: str, name: str) -> Obj:
        return self.get(HTTPROUTES, namespace, name)

    def set_httproute_weights(
        self,
        namespace: str,
        name: str,
        weights: Mapping[str, int],
        *,
        route: Mapping[str, Any] | None = None,
    ) -> Obj:
        """Set the weight of every backendRef named in ``weights`` (Service name → weight).

        ``route`` is the object as last seen (from the informer); without it the route is
        read first. The patch carries its resourceVersion, so a concurrent edit gives
        ``Conflict`` instead of being overwritten. Lists are replaced whole by a merge
        patch, hence all rules are sent. Nothing is written when the weights already match.
        """
        current = (
            copy.deepcopy(dict(route)) if route is not None else self.get_httproute(namespace, name)
        )
        rules = current.get("spec", {}).get("rules") or []
        changed = False
        for rule in rules:
            for ref in rule.get("backendRefs") or []:
                wanted = weights.get(ref.get("name", ""))
                if wanted is not None and ref.get("weight", 1) != wanted:
                    ref["weight"] = wanted
                    changed = True
        if not changed:
            return current
        return self._merge_patch(
            HTTPROUTES,
            namespace,
            name,
            {"spec": {"rules": rules}},
            resource_version=current["metadata"]["resourceVersion"],
        )

    # ------------------------------------------------------------------ events

    def record_event(
        self,
        involved: Mapping[str, Any],
        *,
        reason: str,
        message: str,
        type: str = "Normal",
    ) -> Obj:
        """Record a core/v1 Event about ``involved``; repeats increment ``count``.

        The Event's name is derived from (object uid, type, reason, message), so a repeat
        (even after a controller restart) finds and bumps the same Event instead of
        flooding the namespace, like client-go's event aggregation.
        """
        meta = involved.get("metadata") or {}
        namespace = str(meta.get("namespace") or "default")
        text = (
            message if len(message) <= MAX_EVENT_MESSAGE else message[: MAX_EVENT_MESSAGE - 1] + "…"
        )
        digest = hashlib.sha256(
            "\x00".join([str(meta.get("uid", meta.get("name"))), type, reason, text]).encode()
        ).hexdigest()[:16]
        name = f"{meta.get('name', 'object')}.{digest}"
        now = format_time(self._utcnow())
        with self._event_lock:
            known = self._event_counts.get(name)
        if known is not None:
            try:
                return self._bump_event(namespace, name, known + 1, now)
            except NotFound:
                pass  # expired (events live one hour by default): create it afresh
        event: Obj = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion", ""),
                "kind": involved.get("kind", ""),
                "name": meta.get("name", ""),
                "namespace": namespace,
                "uid": meta.get("uid", ""),
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": text,
            "type": type,
            "source": {
                "component": COMPONENT,
                **({"host": self.instance} if self.instance else {}),
            },
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
        }
        try:
            created = self._request(
                "create", EVENTS, method="POST", namespace=namespace, body=event
            )
        except NamespaceTerminating:
            return {}  # the Rollout is being deleted with its namespace: nobody to tell
        except AlreadyExists:
            existing = self.get(EVENTS, namespace, name)
            return self._bump_event(namespace, name, int(existing.get("count") or 1) + 1, now)
        self._remember_event(name, 1)
        return created

    def _bump_event(self, namespace: str, name: str, count: int, now: str) -> Obj:
        # No resourceVersion precondition: two writers racing on a count lose one
        # increment at worst, which is not worth a retry loop.
        updated = self._merge_patch(
            EVENTS,
            namespace,
            name,
            {"count": count, "lastTimestamp": now},
            resource_version=None,
        )
        self._remember_event(name, int(updated.get("count") or count))
        return updated

    def _remember_event(self, name: str, count: int) -> None:
        with self._event_lock:
            self._event_counts[name] = count
            self._event_counts.move_to_end(name)
            while len(self._event_counts) > _EVENT_CACHE_SIZE:
                self._event_counts.popitem(last=False)

    # ------------------------------------------------------------------ leases

    def get_lease(self, namespace: str, name: str, *, timeout: float | None = None) -> Obj:
        """No retries inside: the leader elector has its own retry period and deadline."""
        return self._request(
            "get",
            LEASES,
            method="GET",
            namespace=namespace,
            name=name,
            retry=NO_RETRY,
            timeout=timeout,
        )

    def create_lease(
        self, namespace: str, name: str, spec: Mapping[str, Any], *, timeout: float | None = None
    ) -> Obj:
        body = {
            "apiVersion": LEASES.api_version,
            "kind": LEASES.kind,
            "metadata": {"name": name, "namespace": namespace},
            "spec": dict(spec),
        }
        return self._request(
            "create",
            LEASES,
            method="POST",
            namespace=namespace,
            body=body,
            retry=NO_RETRY,
            timeout=timeout,
        )

    def update_lease(
        self,
        namespace: str,
        name: str,
        spec: Mapping[str, Any],
        *,
        resource_version: str,
        timeout: float | None = None,
    ) -> Obj:
        """Replace the Lease's spec; 409 ``Conflict`` if someone wrote it since we read it."""
        body = {
            "apiVersion": LEASES.api_version,
            "kind": LEASES.kind,
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": resource_version},
            "spec": dict(spec),
        }
        return self._request(
            "update",
            LEASES,
            method="PUT",
            namespace=namespace,
            name=name,
            body=body,
            retry=NO_RETRY,
            timeout=timeout,
        )

    # --- releases ----------------------------------------------------------------
    # The release controller's own objects in the management cluster; member clusters
    # are reached with ``get_rollout``/``patch_rollout``/``list_replicasets``.

    def get_release(self, namespace: str, name: str) -> Obj:
        return self.get(RELEASES, namespace, name)

    def patch_release(
        self, namespace: str, name: str, patch: Mapping[str, Any], *, resource_version: str
    ) -> Obj:
        """Merge-patch metadata (the CLI's request annotation) with an RV check."""
        return self._merge_patch(
            RELEASES, namespace, name, patch, resource_version=resource_version
        )

    def patch_release_status(
        self,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> Obj:
        """Merge-patch ``status`` through the status subresource, conditional on the RV."""
        return self._merge_patch(
            RELEASES,
            namespace,
            name,
            {"status": dict(status)},
            resource_version=resource_version,
            subresource="status",
        )

    # --- CLI ---------------------------------------------------------------------
    # Reads and writes of ``deployctl rollout/promote/status/...``; the CLI drives the
    # operator through the Rollout resource and reads what it owns, nothing more.

    def list_rollouts(self, namespace: str | None) -> list[Obj]:
        """Rollouts of one namespace, or of all namespaces when ``namespace`` is None."""
        return self.list_objects(ROLLOUTS, namespace).items

    def create_object(self, kind: KindRef, namespace: str, body: Mapping[str, Any]) -> Obj:
        return self._request("create", kind, method="POST", namespace=namespace, body=dict(body))

    def replace_object(
        self, kind: KindRef, namespace: str, name: str, body: Mapping[str, Any]
    ) -> Obj:
        """PUT ``body``; its ``metadata.resourceVersion`` makes it conditional (409 if stale)."""
        return self._request(
            "update", kind, method="PUT", namespace=namespace, name=name, body=dict(body)
        )

    def list_replicasets(self, namespace: str, label_selector: str) -> list[Obj]:
        return self.list_objects(REPLICASETS, namespace, label_selector=label_selector).items

    def list_events_for(self, namespace: str, name: str) -> list[Obj]:
        """Events about the Rollout ``name``, oldest first."""
        selector = f"involvedObject.name={name},involvedObject.kind=Rollout"
        listing = self._request(
            "list", EVENTS, method="GET", namespace=namespace, query={"fieldSelector": selector}
        )
        items = list(listing.get("items") or [])
        return sorted(items, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))

    def read_configmap(self, namespace: str, name: str) -> dict[str, str]:
        """A ConfigMap's data (alert rules files named by ``alertRules``)."""
        obj = self._request("get", CONFIGMAPS, method="GET", namespace=namespace, name=name)
        return {str(k): str(v) for k, v in (obj.get("data") or {}).items()}

    # --- policy ------------------------------------------------------------------

    def read_secret(self, namespace: str, name: str) -> dict[str, str]:
        """A Secret's data, decoded; for webhook URLs. Never log what it returns."""
        obj = self._request("get", SECRETS, method="GET", namespace=namespace, name=name)
        data = obj.get("data") or {}
        return {
            str(key): base64.b64decode(str(value)).decode("utf-8", "replace")
            for key, value in data.items()
        }
