"""The web provider: the only module that sends a metric's HTTP check.

``WebChecks.fetch`` resolves where to send (a URL, or a Service of the Rollout's
namespace), fills headers (values from Secrets are read at each measurement and never
logged or shown), sends with ``requests`` and returns a ``WebReply``, or a
``QueryFailure`` when no reply could be had. ``controller.analysis.webcheck`` judges
the reply.

Retries: a connection error or a timeout is retried with exponential backoff (tenacity)
inside the measurement's budget; a reply, whatever its status code, is never retried:
a 503 from the canary is the evidence, not noise.

Service addresses, ``--service-address``:

- ``dns`` (default, in a cluster): ``http://<service>.<namespace>.svc:<port><path>``;
- ``pods``: the address of a ready pod behind the Service (from the controller's pod
  cache), for a controller that runs outside the cluster network (on a laptop against a
  remote cluster, or the sandbox, which has no cluster DNS and no kube-proxy).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

import requests
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential_jitter,
)

from controller.analysis.values import QueryFailure
from controller.analysis.webcheck import WebReply
from controller.api.analysis import WebProvider
from controller.cache import Cache, Obj
from controller.kube.errors import Forbidden, KubeError, NotFound

ServiceAddressMode = Literal["dns", "pods"]
MAX_BODY = 64 * 1024
SecretReader = Callable[[str, str], Mapping[str, str]]


class SecretProblem(Exception):
    """A header's Secret cannot be read; the message says what to grant or create."""


def _ready(pod: Obj) -> bool:
    status = pod.get("status") or {}
    if pod.get("metadata", {}).get("deletionTimestamp") or not status.get("podIP"):
        return False
    conditions = status.get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


class WebChecks:
    """Sends HTTP checks for analysis metrics (see the module docstring)."""

    def __init__(
        self,
        *,
        secrets: SecretReader,
        services: Cache | None = None,
        pods: Cache | None = None,
        service_address: ServiceAddressMode = "dns",
        session: requests.Session | None = None,
    ) -> None:
        self.secrets = secrets
        self.services = services
        self.pods = pods
        self.service_address = service_address
        self.session = session or requests.Session()

    def base_url(self, web: WebProvider, namespace: str) -> str | QueryFailure:
        if web.url is not None:
            return web.url
        service = str(web.service)
        if self.service_address == "dns":
            return f"http://{service}.{namespace}.svc:{web.port}{web.path}"
        found = self.services.get(namespace, service) if self.services is not None else None
        if found is None:
            return QueryFailure(
                kind="unavailable", query=service, message=f"no Service {namespace}/{service}"
            )
        selector = (found.get("spec") or {}).get("selector") or {}
        pods = self.pods.list(namespace, labels=selector) if self.pods is not None else []
        ready = sorted((p for p in pods if _ready(p)), key=lambda p: p["metadata"]["name"])
        if not selector or not ready:
            return QueryFailure(
                kind="unavailable",
                query=service,
                message=f"no ready pod behind Service {namespace}/{service}",
            )
        return f"http://{ready[0]['status']['podIP']}:{web.port}{web.path}"

    def headers(self, web: WebProvider, namespace: str) -> dict[str, str]:
        """The request's headers; SecretProblem when a Secret cannot be read."""
        out: dict[str, str] = {}
        for header in web.headers:
            if header.value is not None:
                out[header.name] = header.value
                continue
            assert header.value_from is not None
            ref = header.value_from.secret_key_ref
            try:
                data = self.secrets(namespace, ref.name)
            except Forbidden:
                raise SecretProblem(
                    f"header {header.name}: the controller may not read Secret "
                    f"{namespace}/{ref.name}; grant its ServiceAccount `get` on that "
                    "Secret with a Role and RoleBinding in this namespace (docs/analysis.md)"
                ) from None
            except NotFound:
                raise SecretProblem(
                    f"header {header.name}: no Secret {namespace}/{ref.name}"
                ) from None
            except (KubeError, ValueError) as exc:  # ValueError: undecodable data
                raise SecretProblem(
                    f"header {header.name}: cannot read Secret {namespace}/{ref.name}: "
                    f"{type(exc).__name__}"
                ) from None
            if ref.key not in data:
                raise SecretProblem(
                    f"header {header.name}: Secret {namespace}/{ref.name} has no key {ref.key!r}"
                )
            out[header.name] = data[ref.key].strip()
        return out

    def fetch(self, web: WebProvider, *, namespace: str, budget: float) -> WebReply | QueryFailure:
        """One check: the reply, or why there is none (never raises)."""
        url = self.base_url(web, namespace)
        if isinstance(url, QueryFailure):
            return url
        try:
            headers = self.headers(web, namespace)
        except SecretProblem as exc:
            return QueryFailure(kind="rejected", query=url, message=str(exc))
        retrying = Retrying(
            retry=retry_if_exception_type((requests.ConnectionError, requests.Timeout)),
            stop=stop_after_delay(max(budget - web.timeout, 0.0)),
            wait=wait_exponential_jitter(multiplier=0.2, max=2.0, jitter=0.2),
            reraise=False,
        )
        try:
            for attempt in retrying:
                with attempt:
                    reply = self.session.request(
                        web.method,
                        url,
                        headers=headers,
                        data=web.body.encode() if web.body is not None else None,
                        timeout=web.timeout,
                        allow_redirects=False,
                        stream=True,
                    )
                    try:
                        body = reply.raw.read(MAX_BODY, decode_content=True) or b""
                    finally:
                        reply.close()
                    return WebReply(
                        method=web.method,
                        url=url,
                        status=reply.status_code,
                        body=body.decode(reply.encoding or "utf-8", "replace"),
                    )
        except RetryError as exc:
            cause = exc.last_attempt.exception()
            return QueryFailure(
                kind="unavailable",
                query=url,
                message=f"{web.method} {url}: no reply ({type(cause).__name__})",
            )
        except requests.RequestException as exc:
            return QueryFailure(
                kind="rejected",
                query=url,
                message=f"{web.method} {url}: {type(exc).__name__}",
            )
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover
