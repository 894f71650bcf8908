"""structlog configuration for the CLI and the operator, and the log-context helpers.

``configure_logging()`` is called once by the CLI entry point (``deployctl controller``
and the rollout commands): JSON lines when stderr is not a terminal or when
``--log-format json`` is given (the in-cluster default), a readable console renderer on
a terminal. Standard-library loggers (the Kubernetes client, urllib3) are routed through
the same processors, so their lines look like ours and are redacted the same way.

Reconcile workers wrap each pass in ``rollout_context(namespace=..., rollout=...)`` and
call ``bind_revision()`` once the revision is known, so every line they log carries
``namespace``, ``rollout`` and ``revision`` without passing a logger around.

``redact`` is a processor that masks secrets before anything is rendered: values of keys
such as token/authorization/password/secret, and inside strings whatever
``controller.redact.redact_text`` masks (URL userinfo and credential query parameters,
``Bearer ...``, echoed credential headers), at any depth of nested dicts and lists. It
runs again after an exception is rendered, and tracebacks never carry local variables:
a frame's locals may hold a header value read from a Secret.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from controller.redact import REDACTED as REDACTED  # re-exported: callers mask with it
from controller.redact import redact_text

LogFormat = Literal["auto", "json", "console"]

_SECRET_KEY = re.compile(
    r"(token|authorization|password|passwd|secret|api[_-]?key|bearer|cookie|credential)",
    re.IGNORECASE,
)


def _redact_value(value: Any, depth: int = 0) -> Any:
    # Depth-bounded: a log call must never recurse forever on a self-referencing structure.
    if depth > 8:
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            k: (
                REDACTED
                if isinstance(k, str) and _SECRET_KEY.search(k)
                else _redact_value(v, depth + 1)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(v, depth + 1) for v in value)
    return value


def redact(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask secret-looking keys and credentials inside strings."""
    for key in list(event_dict):
        if _SECRET_KEY.search(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _redact_value(event_dict[key])
    return event_dict


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]


def configure_logging(
    *,
    fmt: LogFormat = "auto",
    level: str | int = "info",
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and the stdlib root logger; safe to call again (tests do)."""
    out = stream if stream is not None else sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: Processor
    # Exceptions are rendered to data (JSON) or text (console) *before* the second
    # redaction pass, and without local variables.
    exception_renderer: Processor
    if use_json:
        renderer = structlog.processors.JSONRenderer()
        exception_renderer = structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        )
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
        exception_renderer = structlog.processors.format_exc_info
    exception_processors: list[Processor] = [exception_renderer, redact]
    numeric_level = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric_level, int):
        raise ValueError(f"unknown log level {level!r}")

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *exception_processors,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric_level)
    # urllib3 logs every retried connection with the full URL at WARNING; that stays,
    # but its DEBUG lines would print request headers, bearer token included.
    logging.getLogger("urllib3").setLevel(max(numeric_level, logging.INFO))
    logging.getLogger("kubernetes").setLevel(max(numeric_level, logging.INFO))

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: configure_logging() may run again (tests, CLI flags parsed late)
        # and loggers created earlier must follow the new configuration.
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


@contextmanager
def rollout_context(*, namespace: str, rollout: str, revision: str | None = None) -> Iterator[None]:
    """Bind namespace/rollout (and revision) to every log line of this thread's block."""
    values: dict[str, Any] = {"namespace": namespace, "rollout": rollout}
    if revision is not None:
        values["revision"] = revision
    with structlog.contextvars.bound_contextvars(**values):
        try:
            yield
        finally:
            # bound_contextvars restores only the keys it bound; bind_revision() may have
            # added one inside the block, which must not leak into the next key's pass.
            if revision is None:
                structlog.contextvars.unbind_contextvars("revision")


def bind_revision(revision: str) -> None:
    """Add the revision once known; ``rollout_context``'s exit removes it again."""
    structlog.contextvars.bind_contextvars(revision=revision)


def bind_rollout(
    logger: structlog.stdlib.BoundLogger,
    *,
    namespace: str,
    rollout: str,
    revision: str | None = None,
) -> structlog.stdlib.BoundLogger:
    """A logger carrying namespace/rollout/revision, for code outside a rollout_context."""
    bound = logger.bind(namespace=namespace, rollout=rollout)
    return bound.bind(revision=revision) if revision is not None else bound


def redact_mapping(values: MutableMapping[str, Any]) -> dict[str, Any]:
    """A redacted copy of ``values`` (for putting request data into error messages)."""
    return {k: REDACTED if _SECRET_KEY.search(k) else _redact_value(v) for k, v in values.items()}
