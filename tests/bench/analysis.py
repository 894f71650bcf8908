"""Placeholder: many canaries under Prometheus analysis at once (written next)."""

from __future__ import annotations

from typing import Any


def bench_analysis(workdir: Any, *, count: int, sandbox: Any) -> Any:
    return None
