"""Placeholder report (written next)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any


@dataclass
class Results:
    settings: str = ""
    rollback: Any = None
    cli: Any = None
    scale: Any = None
    analysis: Any = None
    huge: Any = None
    shards: Any = None
    notes: list[str] = field(default_factory=list)


def write_report(results: Results, path: Path, previous: Path | None = None) -> None:
    def conv(o: Any) -> Any:
        return asdict(o) if is_dataclass(o) and not isinstance(o, type) else str(o)

    path.with_suffix(".json").write_text(json.dumps(asdict(results), default=conv, indent=1))
