"""The dashboard's HTTP server: pages, live updates (server-sent events), actions, assets.

Python's own threaded HTTP server: the page set is small, the cluster client and the
informers are thread-based already, and it is what the operator's probe server uses, so
the dashboard adds no dependency and ``deployctl --help`` stays fast. A live page holds
one thread and one ``Subscription`` (see ``watches``) for as long as it is open, capped
by ``Watches.max_subscriptions``; a page that goes away is noticed at the next write
(an update or the heartbeat) and its subscription released.

Routes::

    GET  /                                  all Rollouts (filters: ?namespace=&phase=)
    GET  /rollouts/<ns>/<name>              one Rollout
    GET  /rollouts/<ns>/<name>/confirm/<a>  the confirmation page of an action (no JavaScript)
    POST /rollouts/<ns>/<name>/actions/<a>  take the action (needs the page's token)
    GET  /stream?namespace=&phase=          live list rows (text/event-stream)
    GET  /stream/rollouts/<ns>/<name>       live Rollout page
    GET  /api/rollouts[/<ns>/<name>]        the same views as JSON
    GET  /static/<file>                     the page script, styles and uPlot
    GET  /healthz

The local dashboard acts with the user's credentials, so a page served from anywhere
else must not be able to drive it: POSTs need the random token embedded in this
server's pages, a matching ``Origin`` when the browser sends one, and every request's
``Host`` must name this machine by IP or ``localhost`` (no DNS rebinding).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import structlog

from controller.dashboard import pages
from controller.dashboard.actions import ACTIONS, Actions
from controller.dashboard.html import Markup, el
from controller.dashboard.views import PHASES, list_rows, rollout_view
from controller.dashboard.watches import (
    LIST_TOPIC,
    Closed,
    TooManySubscribers,
    Watches,
    rollout_topic,
)

log = structlog.stdlib.get_logger(__name__)

NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class DashboardServer:
    """Serves the dashboard from ``watches``; actions only when ``actions`` is given."""

    def __init__(
        self,
        watches: Watches,
        *,
        host: str = "127.0.0.1",
        port: int = 3100,
        actions: Actions | None = None,
        scope: str = "",
        heartbeat: float = 15.0,
        min_interval: float = 0.5,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.watches = watches
        self.host = host
        self.port = port
        self.actions = actions
        self.scope = scope or (
            f"namespace {watches.namespace}" if watches.namespace else "all namespaces"
        )
        self.heartbeat = heartbeat
        self.min_interval = min_interval
        self.clock = clock
        self.token = secrets.token_urlsafe(32) if actions is not None else ""
        self.stopping = threading.Event()
        self.assets = _load_assets()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def read_only(self) -> bool:
        return self.actions is None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("server not started")
        host, port = self._server.server_address[:2]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else str(host)
        if ":" in shown:
            shown = f"[{shown}]"
        return f"http://{shown}:{port}"

    def start(self) -> DashboardServer:
        if self._server is not None:
            return self
        owner = self

        class Handler(_Handler):
            dashboard = owner

        family_server = _server_class(self.host)
        self._server = family_server((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="dashboard-server", daemon=True
        )
        self._thread.start()
        log.info("serving the dashboard", url=self.url, read_only=self.read_only)
        return self

    def stop(self) -> None:
        self.stopping.set()
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # ------------------------------------------------------------------ rendering

    def list_view(self, namespace: str | None, phase: str | None) -> list[dict[str, str]]:
        rollouts = self.watches.rollouts.list(namespace or self.watches.namespace)
        return list_rows(rollouts, phase=phase, now=self.clock())

    def rollout_view(self, namespace: str, name: str) -> dict[str, Any] | None:
        rollout = self.watches.rollout(namespace, name)
        if rollout is None:
            return None
        return rollout_view(
            rollout,
            replicasets=self.watches.replicasets_of(namespace, name),
            jobs=self.watches.jobs_of(namespace, name),
            events=self.watches.events_of(namespace, name),
            templates=self.watches.templates_in(namespace),
            now=self.clock(),
        )

    def rollout_fragment(self, namespace: str, name: str) -> Markup | None:
        view = self.rollout_view(namespace, name)
        if view is None:
            return None
        rollout = self.watches.rollout(namespace, name) or {}
        offers = self.actions.offers(rollout) if self.actions is not None else None
        return pages.rollout_html(view, offers)

    def in_scope(self, namespace: str) -> bool:
        return self.watches.namespace is None or self.watches.namespace == namespace


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:port`` for IPv6) -> (host, port); ValueError if not."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or int(port) > 65_535:
        raise ValueError(f"--dashboard-address must be host:port (got {address!r})")
    return host, int(port)


def _server_class(host: str) -> type[ThreadingHTTPServer]:
    try:
        is_v6 = ipaddress.ip_address(host).version == 6
    except ValueError:
        is_v6 = False
    if not is_v6:
        return ThreadingHTTPServer

    class V6Server(ThreadingHTTPServer):
        address_family = __import__("socket").AF_INET6

    return V6Server


def _load_assets() -> dict[str, tuple[bytes, str]]:
    """Every file under static/, read once: nothing else on disk can be served."""
    root = resources.files("controller.dashboard") / "static"
    assets: dict[str, tuple[bytes, str]] = {}

    def walk(node: Any, prefix: str) -> None:
        for child in node.iterdir():
            name = f"{prefix}{child.name}"
            if child.is_dir():
                walk(child, f"{name}/")
            else:
                suffix = Path(child.name).suffix
                assets[name] = (child.read_bytes(), CONTENT_TYPES.get(suffix, "text/plain"))

    walk(root, "")
    return assets


def _host_is_local(host_header: str) -> bool:
    """``Host`` names this machine by IP address or ``localhost`` (a DNS name another
    site controls could otherwise be re-pointed at 127.0.0.1)."""
    host = host_header.strip()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    else:
        host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if host.lower() in ("localhost", "localhost.", ""):
        return host != ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class _Handler(BaseHTTPRequestHandler):
    dashboard: DashboardServer
    server_version = "deployctl-dashboard"
    sys_version = ""
    # A client that neither sends its request nor reads its stream for this long is
    # dropped: a stalled tab cannot hold a thread (and its subscription) forever.
    timeout = 60

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("dashboard request", line=format % args)

    # ------------------------------------------------------------------ plumbing

    def _send(
        self,
        code: int,
        body: bytes | str,
        content_type: str = "text/html; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for key, value in {**SECURITY_HEADERS, **(headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _json(self, code: int, document: Any) -> None:
        self._send(code, json.dumps(document, default=str), "application/json")

    def _page(self, code: int, title: str, text: str, back: str = "/") -> None:
        if "json" in self.headers.get("Accept", ""):
            self._json(code, {"ok": 200 <= code < 300, "message": text})
            return
        self._send(code, pages.message_page(title, text, back=back, scope=self.dashboard.scope))

    def _allowed_host(self) -> bool:
        if self.dashboard.read_only:
            return True  # nothing to act on; served in-cluster under any Service name
        if _host_is_local(self.headers.get("Host", "")):
            return True
        self._send(421, "this dashboard answers only to an IP address or localhost\n", "text/plain")
        return False

    def _query(self) -> dict[str, str]:
        parsed = parse_qs(urlsplit(self.path).query)
        return {k: v[-1] for k, v in parsed.items() if v and v[-1]}

    def _segments(self) -> list[str]:
        return [unquote(p) for p in urlsplit(self.path).path.split("/") if p]

    # ------------------------------------------------------------------ GET

    def do_HEAD(self) -> None:
        if self._segments()[:1] == ["stream"]:
            self._send(405, "", "text/plain")  # a stream has no head to give
            return
        self.do_GET()

    def do_GET(self) -> None:
        if not self._allowed_host():
            return
        parts = self._segments()
        try:
            if not parts:
                self._list_page()
            elif parts == ["healthz"]:
                ok = self.dashboard.watches.synced()
                self._send(200 if ok else 503, "ok\n" if ok else "syncing\n", "text/plain")
            elif parts[0] == "static" and len(parts) > 1:
                self._static("/".join(parts[1:]))
            elif parts[0] == "rollouts" and len(parts) == 3:
                self._rollout_page(parts[1], parts[2])
            elif parts[0] == "rollouts" and len(parts) == 5 and parts[3] == "confirm":
                self._confirm_page(parts[1], parts[2], parts[4])
            elif parts == ["stream"]:
                query = self._query()
                self._stream_list(query.get("namespace"), _phase(query.get("phase")))
            elif parts[:2] == ["stream", "rollouts"] and len(parts) == 4:
                self._stream_rollout(parts[2], parts[3])
            elif parts == ["api", "rollouts"]:
                query = self._query()
                self._json(
                    200,
                    self.dashboard.list_view(query.get("namespace"), _phase(query.get("phase"))),
                )
            elif parts[:2] == ["api", "rollouts"] and len(parts) == 4:
                view = self._view(parts[2], parts[3])
                if view is not None:
                    self._json(200, view)
            else:
                self._page(404, "Not found", f"nothing at {urlsplit(self.path).path}")
        except OSError:
            return  # the browser went away mid-answer

    def _list_page(self) -> None:
        query = self._query()
        namespace, phase = query.get("namespace"), _phase(query.get("phase"))
        dash = self.dashboard
        rows = dash.list_view(namespace, phase)
        content = pages.list_content(
            rows,
            namespaces=dash.watches.namespaces() if dash.watches.namespace is None else None,
            namespace=namespace,
            phase=phase,
        )
        if not dash.watches.synced():
            content = Markup(
                el("p", "Loading: the first list of Rollouts is on its way.", class_="note")
                + content
            )
        self._send(
            200,
            pages.layout(
                "Rollouts",
                content,
                scope=dash.scope,
                token=dash.token,
                page="list",
                stream=pages.list_stream(namespace, phase),
                read_only=dash.read_only,
            ),
        )

    def _view(self, namespace: str, name: str) -> dict[str, Any] | None:
        if not (NAME.match(namespace) and NAME.match(name)) or not self.dashboard.in_scope(
            namespace
        ):
            self._page(404, "Not found", f"no rollout {namespace}/{name} in this dashboard")
            return None
        view = self.dashboard.rollout_view(namespace, name)
        if view is None:
            self._page(404, "Not found", f"rollout {namespace}/{name} not found")
        return view

    def _rollout_page(self, namespace: str, name: str) -> None:
        if self._view(namespace, name) is None:
            return
        dash = self.dashboard
        fragment = dash.rollout_fragment(namespace, name) or Markup("")
        self._send(
            200,
            pages.layout(
                f"{namespace}/{name}",
                fragment,
                scope=dash.scope,
                token=dash.token,
                page="rollout",
                stream=pages.rollout_path(namespace, name).replace(
                    "/rollouts/", "/stream/rollouts/", 1
                ),
                read_only=dash.read_only,
            ),
        )

    def _confirm_page(self, namespace: str, name: str, action: str) -> None:
        dash = self.dashboard
        view = self._view(namespace, name)
        if view is None:
            return
        back = pages.rollout_path(namespace, name)
        if dash.actions is None:
            self._page(405, "Read-only", "this dashboard is read-only", back)
            return
        rollout = dash.watches.rollout(namespace, name) or {}
        offer = next((o for o in dash.actions.offers(rollout) if o.action == action), None)
        if offer is None:
            self._page(404, "Not found", f"unknown action {action!r}", back)
            return
        if not offer.enabled:
            self._page(409, f"{offer.label} not possible", offer.reason, back)
            return
        content = pages.confirm_content(
            view,
            offer,
            token=dash.token,
            back=back,
            post=pages.rollout_path(namespace, name, "actions", action),
        )
        self._send(
            200,
            pages.layout(
                offer.label,
                content,
                scope=dash.scope,
                token=dash.token,
                page="confirm",
                stream=None,
                read_only=False,
            ),
        )

    def _static(self, name: str) -> None:
        asset = self.dashboard.assets.get(name)
        if asset is None:
            self._send(404, "not found\n", "text/plain")
            return
        body, content_type = asset
        self._send(200, body, content_type, {"Cache-Control": "max-age=3600"})

    # ------------------------------------------------------------------ live updates

    def _stream_list(self, namespace: str | None, phase: str | None) -> None:
        self._stream(
            LIST_TOPIC,
            lambda: pages.list_rows_html(self.dashboard.list_view(namespace, phase)),
        )

    def _stream_rollout(self, namespace: str, name: str) -> None:
        if not (NAME.match(namespace) and NAME.match(name)) or not self.dashboard.in_scope(
            namespace
        ):
            self._send(404, "not found\n", "text/plain")
            return
        self._stream(
            rollout_topic(namespace, name),
            lambda: (
                self.dashboard.rollout_fragment(namespace, name)
                or Markup(el("p", f"rollout {namespace}/{name} was deleted", class_="note"))
            ),
        )

    def _stream(self, topic: str, render: Callable[[], str]) -> None:
        dash = self.dashboard
        try:
            subscription = dash.watches.subscribe([topic])
        except (TooManySubscribers, Closed) as exc:
            self._send(503, f"{exc}\n", "text/plain", {"Retry-After": "30"})
            return
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Accel-Buffering", "no")
            for key, value in SECURITY_HEADERS.items():
                self.send_header(key, value)
            self.end_headers()
            # Browsers reconnect by themselves; 3 s keeps a restarted server's pages live.
            self.wfile.write(b"retry: 3000\n\n")
            last = ""
            changed = {topic}
            while not dash.stopping.is_set():
                if changed:
                    html = str(render())
                    if html != last:
                        last = html
                        payload = json.dumps({"html": html}, separators=(",", ":"))
                        self.wfile.write(f"event: update\ndata: {payload}\n\n".encode())
                        self.wfile.flush()
                    # Coalesce bursts (a rollback writes status several times a second).
                    if dash.stopping.wait(dash.min_interval):
                        break
                else:
                    self.wfile.write(b": heartbeat\n\n")
                    self.wfile.flush()
                changed = subscription.wait(dash.heartbeat)
        except (OSError, Closed):
            pass  # the page went away (closed, reset, or stalled past the timeout)
        finally:
            subscription.close()

    # ------------------------------------------------------------------ POST

    def do_POST(self) -> None:
        if not self._allowed_host():
            return
        dash = self.dashboard
        parts = self._segments()
        if not (parts[:1] == ["rollouts"] and len(parts) == 5 and parts[3] == "actions"):
            self._page(404, "Not found", "no such action")
            return
        namespace, name, action = parts[1], parts[2], parts[4]
        back = pages.rollout_path(namespace, name)
        if dash.actions is None:
            self._page(405, "Read-only", "this dashboard is read-only", back)
            return
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(min(length, 4096)).decode("utf-8", "replace"))
        token = self.headers.get("X-Deployctl-Token") or (form.get("token") or [""])[-1]
        origin = self.headers.get("Origin")
        if not hmac.compare_digest(token.encode(), dash.token.encode()) or (
            origin is not None and urlsplit(origin).netloc != self.headers.get("Host", "")
        ):
            self._page(403, "Refused", "the request did not come from this dashboard's page", back)
            return
        if action not in ACTIONS:
            self._page(404, "Not found", f"unknown action {action!r}", back)
            return
        if self._view(namespace, name) is None:
            return
        rollout = dash.watches.rollout(namespace, name) or {}
        offer = next((o for o in dash.actions.offers(rollout) if o.action == action), None)
        if offer is not None and not offer.enabled:
            self._page(409, f"{offer.label} not possible", offer.reason, back)
            return
        log.info("dashboard action", action=action, namespace=namespace, rollout=name)
        outcome = dash.actions.perform(namespace, name, action)
        self._page(outcome.status, "Done" if outcome.ok else "Failed", outcome.message, back)


def _phase(value: str | None) -> str | None:
    return value if value in PHASES else None
