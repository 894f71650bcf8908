"""One open watch stream: events in, our errors out, closable from another thread.

``Transport.watch_objects`` opens the HTTP stream and hands it to a ``WatchStream``; the
informer iterates it and re-opens a new one when it ends (reconnection and re-listing
are the informer's job, never retried here).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import urllib3
from kubernetes.watch.watch import iter_resp_lines as _untyped_iter_resp_lines

from controller.kube.errors import KubeError, Transient, error_from_status
from controller.kube.kinds import KindRef, Obj

# The client's function carries no annotations; give it a type once, here.
iter_resp_lines: Callable[[Any], Iterator[str]] = _untyped_iter_resp_lines


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
