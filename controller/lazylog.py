"""A logger that imports structlog only when something is logged.

Modules on the CLI's path (the Kubernetes adapter) log rarely (a retried request), and
importing structlog costs a command-line start a tenth of a second. ``lazy_logger``
returns a stand-in whose calls import structlog on first use; ``quiet(level)`` (the CLI
calls it before connecting) drops calls below ``level`` without importing anything, as
``configure_logging(level=...)`` would have filtered them.
"""

from __future__ import annotations

import logging
from typing import Any

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
}
_threshold = logging.NOTSET


def quiet(level: str) -> None:
    """Drop lazy loggers' calls below ``level`` (e.g. "error") without importing structlog."""
    global _threshold
    _threshold = _LEVELS[level]


class LazyLogger:
    """Stands in for ``structlog.stdlib.get_logger(name)``; see the module docstring."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, method: str) -> Any:
        level = _LEVELS.get(method)
        if level is not None and level < _threshold:
            return _drop
        import structlog

        return getattr(structlog.stdlib.get_logger(self._name), method)


def _drop(*_args: Any, **_kwargs: Any) -> None:
    return None


def lazy_logger(name: str) -> Any:
    return LazyLogger(name)
