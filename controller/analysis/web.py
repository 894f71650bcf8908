"""The web provider: the only module that sends a metric's HTTP check.

``WebChecks.fetch`` works out where to send (a URL, or a Service of the Rollout's
namespace), fills headers (values from Secrets are read at each measurement and never
logged or shown), resolves the host, asks the address policy
(``controller.analysis.addresses``) about the name and every address, connects to an
address that passed, and returns a ``WebReply`` or a ``QueryFailure`` saying why there is
none. It never raises. ``controller.analysis.webcheck`` judges the reply.

Bounds (one tenant's check must not hold a worker that serves every namespace):

- one **deadline** for the whole call, retries, DNS and reading included: the budget the
  engine gives (at most the metric's interval), never more than ``MAX_CALL_SECONDS``;
  ``web.timeout`` only shortens it. A watchdog shuts the socket at the deadline, so a
  server that accepts and never answers, or drips a byte at a time, costs at most that;
- DNS lookups run on a small pool of their own threads and are waited for only until the
  deadline (the resolver has no timeout of its own);
- the body is read up to ``MAX_BODY`` bytes, and a gzip/deflate body is decompressed up
  to ``MAX_BODY`` bytes, whatever the server sends.

No DNS-rebinding window: the connection goes to the address that was checked; the
host name travels in the ``Host`` header and, for https, in SNI and the certificate
check. Environment proxies are not used (the policy judges the real destination).

Retries: a connection that cannot be made is retried with backoff inside the deadline; a
reply, whatever its status code, is never retried: a 503 from the canary is the
evidence, not noise.

Service addresses, ``--service-address``:

- ``dns`` (default, in a cluster): ``http://<service>.<namespace>.svc:<port><path>``;
- ``pods``: the address of a ready pod behind the Service (from the controller's pod
  cache), for a controller that runs outside the cluster network (on a laptop against a
  remote cluster, or the sandbox, which has no cluster DNS and no kube-proxy). URLs
  naming ``<service>.<namespace>.svc`` are reached the same way.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit

import certifi
import structlog
from tenacity import Retrying, retry_if_exception, stop_before_delay, wait_exponential_jitter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.response import BaseHTTPResponse

from controller.analysis.addresses import (
    AddressPolicy,
    IPAddress,
    Refusal,
    cluster_service,
    describe,
    normalise,
)
from controller.analysis.values import QueryFailure
from controller.analysis.webcheck import WebReply
from controller.api.analysis import MAX_WEB_SECONDS, WebProvider
from controller.cache import Cache, Obj
from controller.kube.errors import Forbidden, KubeError, NotFound
from controller.redact import CREDENTIAL_NAME, redact_url

log = structlog.stdlib.get_logger(__name__)

ServiceAddressMode = Literal["dns", "pods"]
MAX_BODY = 64 * 1024
MAX_CALL_SECONDS = MAX_WEB_SECONDS
SecretReader = Callable[[str, str], Mapping[str, str]]
Resolver = Callable[[str, int], list[str]]
USER_AGENT = "deployctl-webcheck"

# DNS lookups have no timeout of their own; a few threads bound how many can hang.
_DNS_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webcheck-dns")


class SecretProblem(Exception):
    """A header's Secret cannot be read; the message says what to grant or create."""


class _Refused(Exception):
    """The address policy refused every address; the message names the rules."""


class _DeadlinePassed(Exception):
    """The call's deadline passed before a reply was read."""


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (TCP), in the resolver's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _ready(pod: Obj) -> bool:
    status = pod.get("status") or {}
    if pod.get("metadata", {}).get("deletionTimestamp") or not status.get("podIP"):
        return False
    conditions = status.get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _ip(text: str) -> IPAddress | None:
    try:
        return normalise(ipaddress.ip_address(text.split("%", 1)[0]))
    except ValueError:
        return None


@dataclass(frozen=True)
class Target:
    """Where one check goes: the URL people see, and what the connection needs."""

    url: str
    scheme: str
    host: str
    port: int
    target: str
    """The request target: path and query."""
    userinfo: str = ""
    via_pod: str | None = None
    """``pods`` mode: the address of the ready pod that stands for the named Service."""

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True)
class _Request:
    method: str
    headers: dict[str, str]
    body: bytes | None
    sensitive: tuple[str, ...]


class WebChecks:
    """Sends HTTP checks for analysis metrics (see the module docstring)."""

    def __init__(
        self,
        *,
        secrets: SecretReader,
        services: Cache | None = None,
        pods: Cache | None = None,
        service_address: ServiceAddressMode = "dns",
        policy: AddressPolicy | None = None,
        resolver: Resolver = system_resolver,
        tls: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.secrets = secrets
        self.services = services
        self.pods = pods
        self.service_address = service_address
        self.policy = policy if policy is not None else AddressPolicy()
        self.resolver = resolver
        self.tls = tls
        self.clock = clock

    # ------------------------------------------------------------------ where to

    def _service_pod(self, namespace: str, service: str, port: int) -> str | QueryFailure:
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
        return str(ready[0]["status"]["podIP"])

    def target(self, web: WebProvider, namespace: str) -> Target | QueryFailure:
        """Where ``web`` goes for a Rollout in ``namespace``."""
        if web.url is None:
            service = str(web.service)
            url = f"http://{service}.{namespace}.svc:{web.port}{web.path}"
        else:
            url = web.url
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return QueryFailure(
                kind="rejected", query=redact_url(url), message=f"{redact_url(url)}: bad URL"
            )
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host:
            return QueryFailure(
                kind="rejected",
                query=redact_url(url),
                message=f"{redact_url(url)}: only http(s) URLs with a host are checked",
            )
        userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
        found = Target(
            url=url,
            scheme=parts.scheme,
            host=host,
            port=port,
            target=(parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
            userinfo=userinfo,
        )
        named = cluster_service(host)
        if self.service_address == "pods" and named is not None:
            refused = self.policy.name_refusals(host, own_namespace=namespace)
            if refused:
                return QueryFailure(
                    kind="rejected", query=redact_url(url), message=describe(host, refused)
                )
            pod = self._service_pod(named[1], named[0], port)
            if isinstance(pod, QueryFailure):
                return pod
            return Target(**{**found.__dict__, "via_pod": pod})
        return found

    # ------------------------------------------------------------------ what to send

    def headers(self, web: WebProvider, namespace: str) -> dict[str, str]:
        """The request's headers; SecretProblem when a Secret cannot be read or a value
        cannot be sent (the message never contains the value)."""
        out: dict[str, str] = {}
        for header in web.headers:
            if header.value is not None:
                out[header.name] = header.value
                continue
            assert header.value_from is not None
            ref = header.value_from.secret_key_ref
            where = f"Secret {namespace}/{ref.name}"
            try:
                data = self.secrets(namespace, ref.name)
            except Forbidden:
                raise SecretProblem(
                    f"header {header.name}: the controller may not read {where}; grant "
                    "its ServiceAccount `get` on that Secret with a Role and RoleBinding "
                    "in this namespace (docs/analysis.md)"
                ) from None
            except NotFound:
                raise SecretProblem(f"header {header.name}: no {where}") from None
            except (KubeError, ValueError) as exc:  # ValueError: undecodable data
                raise SecretProblem(
                    f"header {header.name}: cannot read {where}: {type(exc).__name__}"
                ) from None
            if ref.key not in data:
                raise SecretProblem(f"header {header.name}: {where} has no key {ref.key!r}")
            out[header.name] = data[ref.key].strip()
            _check_header_value(header.name, out[header.name], f"{where} key {ref.key!r}")
        for name, value in out.items():
            _check_header_value(name, value, "the template")
        return out

    def _request(self, web: WebProvider, target: Target, namespace: str) -> _Request:
        headers = self.headers(web, namespace)
        from_secrets = {h.name for h in web.headers if h.value_from is not None}
        sensitive = [
            value
            for name, value in headers.items()
            if name in from_secrets or CREDENTIAL_NAME.search(name)
        ]
        lowered = {name.lower() for name in headers}
        if target.userinfo and "authorization" not in lowered:
            user, _, password = target.userinfo.partition(":")
            token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
            sensitive += [token, unquote(password)]
        headers.setdefault("User-Agent", USER_AGENT)
        if "accept-encoding" not in lowered:
            headers["Accept-Encoding"] = "identity"
        headers["Host"] = target.host_header
        body = web.body.encode() if web.body is not None else None
        return _Request(web.method, headers, body, tuple(sensitive))

    # ------------------------------------------------------------------ policy

    def _owners(self) -> dict[IPAddress, tuple[str, str]]:
        """Cluster IPs of Services and IPs of pods the caches know, by owner."""
        owners: dict[IPAddress, tuple[str, str]] = {}
        for cache, kind in ((self.pods, "pod"), (self.services, "Service")):
            for obj in cache.list() if cache is not None else []:
                meta = obj.get("metadata") or {}
                if kind == "pod":
                    status = obj.get("status") or {}
                    ips = [p.get("ip") for p in status.get("podIPs") or []] or [status.get("podIP")]
                else:
                    spec = obj.get("spec") or {}
                    ips = list(spec.get("clusterIPs") or []) or [spec.get("clusterIP")]
                for text in ips:
                    ip = _ip(str(text or ""))
                    if ip is not None:
                        owners[ip] = (f"{kind} {meta.get('name')}", str(meta.get("namespace")))
        return owners

    def _apiserver(self) -> list[IPAddress]:
        """The ``kubernetes`` Service's cluster IPs, when the Service cache has them."""
        found = self.services.get("default", "kubernetes") if self.services is not None else None
        spec = (found or {}).get("spec") or {}
        texts = list(spec.get("clusterIPs") or []) or [spec.get("clusterIP")]
        return [ip for ip in (_ip(str(t or "")) for t in texts) if ip is not None]

    def allowed_addresses(
        self, target: Target, namespace: str, *, deadline: float
    ) -> list[IPAddress]:
        """The addresses to connect to, all checked; _Refused naming the rules if any
        address (or the name) is refused."""
        host = target.via_pod or target.host
        literal = _ip(host)
        name_refusals = (
            []
            if literal is not None or target.via_pod
            else self.policy.name_refusals(host, own_namespace=namespace)
        )
        if literal is not None:
            addresses = [literal]
        else:
            unliftable = [r for r in name_refusals if not r.liftable]
            if unliftable:
                raise _Refused(describe(host, name_refusals))
            addresses = self._resolve(host, target.port, deadline=deadline)
        name_refusals = [r for r in name_refusals if not self.policy.name_lifted(r, addresses)]
        owners = self._owners()
        if target.via_pod is not None:
            owners.pop(addresses[0], None)  # the Service's own pod, in an allowed namespace
        apiserver = self._apiserver()
        refusals: list[Refusal] = list(name_refusals)
        for address in addresses:
            refusals += self.policy.address_refusals(
                address, own_namespace=namespace, owners=owners, apiserver=apiserver
            )
        if refusals:
            shown = host if literal is not None else f"{host} ({', '.join(map(str, addresses))})"
            raise _Refused(describe(shown, refusals))
        return addresses

    def _resolve(self, host: str, port: int, *, deadline: float) -> list[IPAddress]:
        remaining = deadline - self.clock()
        if remaining <= 0:
            raise _DeadlinePassed()
        future = _DNS_POOL.submit(self.resolver, host, port)
        try:
            texts = future.result(timeout=remaining)
        except FutureTimeout:
            raise _DeadlinePassed() from None
        except (OSError, UnicodeError) as exc:
            raise ConnectionError(f"cannot resolve {host} ({type(exc).__name__})") from None
        addresses = [ip for ip in (_ip(t) for t in texts) if ip is not None]
        if not addresses:
            raise ConnectionError(f"cannot resolve {host} (no address)")
        return addresses

    # ------------------------------------------------------------------ sending

    def fetch(self, web: WebProvider, *, namespace: str, budget: float) -> WebReply | QueryFailure:
        """One check: the reply, or why there is none (never raises; see the docstring)."""
        started = self.clock()
        limit = min(budget, web.timeout, MAX_CALL_SECONDS)
        deadline = started + limit
        shown = redact_url(web.url) if web.url is not None else f"Service {web.service}"
        try:
            target = self.target(web, namespace)
            if isinstance(target, QueryFailure):
                return target
            shown = redact_url(target.url)
            try:
                request = self._request(web, target, namespace)
            except SecretProblem as exc:
                return QueryFailure(kind="rejected", query=shown, message=str(exc))
            addresses = self.allowed_addresses(target, namespace, deadline=deadline)
            return self._send(target, request, addresses, deadline=deadline, started=started)
        except _Refused as exc:
            return QueryFailure(kind="rejected", query=shown, message=str(exc))
        except _DeadlinePassed:
            return QueryFailure(
                kind="unavailable",
                query=shown,
                message=f"{web.method} {shown}: no reply within {limit:g} s",
            )
        except ConnectionError as exc:
            return QueryFailure(
                kind="unavailable", query=shown, message=f"{web.method} {shown}: {exc}"
            )
        except Exception as exc:  # noqa: BLE001 - a provider returns a value, never raises
            # The type only: a message may quote what was being sent (a header value).
            log.warning("web check failed", target=shown, error=type(exc).__name__)
            return QueryFailure(
                kind="rejected",
                query=shown,
                message=f"{web.method} {shown}: the check failed ({type(exc).__name__})",
            )

    def _send(
        self,
        target: Target,
        request: _Request,
        addresses: list[IPAddress],
        *,
        deadline: float,
        started: float,
    ) -> WebReply | QueryFailure:
        shown = redact_url(target.url)
        attempts = 0

        def retryable(exc: BaseException) -> bool:
            return isinstance(exc, ConnectionError | TimeoutError | Urllib3Error | OSError) and (
                not isinstance(exc, ssl.SSLCertVerificationError | _DeadlinePassed)
            )

        retrying = Retrying(
            retry=retry_if_exception(retryable),
            stop=stop_before_delay(max(deadline - self.clock(), 0.0)),
            wait=wait_exponential_jitter(multiplier=0.2, max=2.0, jitter=0.2),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    address = addresses[attempts % len(addresses)]
                    attempts += 1
                    status, body, elapsed = self._exchange(
                        target, request, address, deadline=deadline
                    )
                    return WebReply(
                        method=request.method,
                        url=shown,
                        status=status,
                        body=body,
                        elapsed=elapsed,
                        sensitive=request.sensitive,
                    )
        except _DeadlinePassed:
            return QueryFailure(
                kind="unavailable",
                query=shown,
                message=(
                    f"{request.method} {shown}: no reply within {deadline - started:.3g} s"
                    + (f" ({attempts} attempts)" if attempts > 1 else "")
                ),
                attempts=attempts,
            )
        except ssl.SSLCertVerificationError as exc:
            return QueryFailure(
                kind="rejected",
                query=shown,
                message=f"{request.method} {shown}: TLS certificate not trusted ({exc.reason})",
            )
        except (OSError, Urllib3Error, http.client.HTTPException) as exc:
            return QueryFailure(
                kind="unavailable",
                query=shown,
                message=f"{request.method} {shown}: no reply ({_cause_name(exc)})",
                attempts=attempts,
            )
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    def _connection(self, target: Target, address: IPAddress, timeout: float) -> HTTPConnection:
        if target.scheme == "https":
            context = self.tls or ssl.create_default_context(cafile=certifi.where())
            return HTTPSConnection(
                str(address),
                target.port,
                timeout=timeout,
                server_hostname=target.host,
                ssl_context=context,
            )
        return HTTPConnection(str(address), target.port, timeout=timeout)

    def _exchange(
        self, target: Target, request: _Request, address: IPAddress, *, deadline: float
    ) -> tuple[int, str, float]:
        """One request to ``address``: (status, body text, seconds); raises on no reply."""
        began = self.clock()
        remaining = deadline - began
        if remaining <= 0:
            raise _DeadlinePassed()
        # The socket's timeout bounds the TCP connect (before there is a socket to shut);
        # the watchdog bounds everything after. Whichever fires at the deadline, the
        # outcome is "no reply within the deadline".
        conn = self._connection(target, address, remaining)
        expired = threading.Event()

        def shut() -> None:
            # Unblocks a recv() stuck on a server that never answers (or drips bytes).
            expired.set()
            sock = conn.sock
            if sock is not None:
                try:
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
                except OSError:
                    pass

        watchdog = threading.Timer(remaining, shut)
        watchdog.daemon = True
        watchdog.start()
        try:
            conn.request(
                request.method,
                target.target,
                body=request.body,
                headers=request.headers,
                preload_content=False,
                decode_content=False,
            )
            reply = conn.getresponse()
            raw = _read_capped(reply, MAX_BODY)
            encoding = str(reply.headers.get("Content-Encoding") or "").strip().lower()
            charset = _charset(str(reply.headers.get("Content-Type") or ""))
            text = _decoded(raw, encoding).decode(charset, "replace")
            return reply.status, text, self.clock() - began
        except Exception:
            if expired.is_set() or self.clock() >= deadline:
                raise _DeadlinePassed() from None
            raise
        finally:
            watchdog.cancel()
            conn.close()


def _cause_name(exc: BaseException) -> str:
    """The most telling type name: urllib3 wraps ``ConnectionRefusedError`` and friends."""
    seen = exc
    for _ in range(5):
        inner = seen.__cause__ or seen.__context__
        if inner is None:
            break
        seen = inner
        if type(seen).__module__ == "builtins":
            return type(seen).__name__
    return type(exc).__name__


def _check_header_value(name: str, value: str, source: str) -> None:
    """http.client sends header values as Latin-1 on one line and, when it cannot,
    raises an error quoting the value; refuse such a value first, without quoting it."""
    if any(c in value for c in "\r\n\0"):
        raise SecretProblem(f"header {name}: the value from {source} is not one line")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise SecretProblem(
            f"header {name}: the value from {source} has characters an HTTP header cannot "
            "carry (only Latin-1)"
        ) from None


def _read_capped(reply: BaseHTTPResponse, limit: int) -> bytes:
    """At most ``limit`` bytes of the raw body, read in chunks."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = reply.read(min(16 * 1024, limit - size), decode_content=False)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _decoded(raw: bytes, encoding: str) -> bytes:
    """gzip/deflate bodies decompressed to at most ``MAX_BODY`` bytes; others as sent."""
    if encoding in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif encoding == "deflate":
        wbits = zlib.MAX_WBITS if raw[:1] == b"\x78" else -zlib.MAX_WBITS
    else:
        return raw
    try:
        return zlib.decompressobj(wbits).decompress(raw, MAX_BODY)
    except zlib.error:
        return raw


def _charset(content_type: str) -> str:
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            name = value.strip("\"' ")
            try:
                "".encode(name)
            except LookupError:
                return "utf-8"
            return name
    return "utf-8"
