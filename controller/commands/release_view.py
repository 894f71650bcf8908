"""How a Release looks to a person (a waves x clusters matrix) and to a script (dicts).

Pure functions of the Release as read from the API (or of its model, for ``plan``); the
only output is the rich renderables handed back. Used by ``commands/release.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from controller.api.duration import format_duration
from controller.api.release import Release
from controller.commands.render import age
from controller.exitcodes import Exit
from controller.rollout_outcome import WaitOutcome

COLOURS = {
    "Healthy": "green",
    "Succeeded": "green",
    "RolledBack": "yellow",
    "Progressing": "cyan",
    "Soaking": "cyan",
    "Held": "yellow",
    "Waiting": "yellow",
    "RollingBack": "yellow",
    "Failed": "red",
    "Pending": "dim",
}
FINISHED = ("Succeeded", "Failed", "RolledBack")


def _coloured(phase: str) -> str:
    colour = COLOURS.get(phase)
    return f"[{colour}]{phase}[/]" if colour else phase


# --------------------------------------------------------------------------- plan


def plan_rows(release: Release) -> list[dict[str, Any]]:
    """The waves in order, as ``deployctl release plan`` prints them."""
    rows: list[dict[str, Any]] = []
    previous = ""
    for index, wave in enumerate(release.spec.waves, start=1):
        rows.append(
            {
                "wave": index,
                "name": wave.name,
                "clusters": list(wave.clusters),
                "maxParallel": wave.parallel,
                "soak": format_duration(wave.soak),
                "startsWhen": f"{previous} Healthy and soaked" if previous else "at once",
            }
        )
        previous = wave.name
    return rows


def plan_view(release: Release) -> RenderableType:
    spec = release.spec
    change = ", ".join(f"{c}={i}" for c, i in spec.images.items())
    if spec.template_patch:
        change = (change + " + templatePatch").lstrip(" +")
    table = Table(
        title=f"release {release.metadata.name or '?'}: {spec.rollout} -> {change}",
        title_justify="left",
    )
    for column in ("#", "WAVE", "CLUSTERS", "AT ONCE", "SOAK", "STARTS WHEN"):
        table.add_column(column)
    for row in plan_rows(release):
        table.add_row(
            str(row["wave"]),
            row["name"],
            ", ".join(row["clusters"]),
            str(row["maxParallel"]),
            row["soak"],
            row["startsWhen"],
        )
    footer = Text(
        f"on failure: {spec.on_failure}; clusterTimeout "
        f"{format_duration(spec.cluster_timeout)}, unreachableTimeout "
        f"{format_duration(spec.unreachable_timeout)}"
    )
    return Group(table, footer)


# --------------------------------------------------------------------------- status


def _clusters_by_wave(status: Mapping[str, Any]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {}
    for cluster in status.get("clusters") or []:
        out.setdefault(str(cluster.get("wave")), []).append(cluster)
    return out


def status_document(raw: Mapping[str, Any]) -> dict[str, Any]:
    """``deployctl release status -o json``: the phases and everything behind them."""
    meta, spec = raw.get("metadata") or {}, raw.get("spec") or {}
    status = raw.get("status") or {}
    by_wave = _clusters_by_wave(status)
    waves_status = {w.get("name"): w for w in status.get("waves") or []}
    waves = []
    for wave in spec.get("waves") or []:
        name = wave.get("name")
        state = waves_status.get(name) or {}
        waves.append(
            {
                "name": name,
                "phase": state.get("phase", "Pending"),
                "startedAt": state.get("startedAt"),
                "soakUntil": state.get("soakUntil"),
                "finishedAt": state.get("finishedAt"),
                "clusters": [dict(c) for c in by_wave.get(name, [])]
                or [{"name": c, "phase": "Pending"} for c in wave.get("clusters") or []],
            }
        )
    rollout = spec.get("rollout") or {}
    return {
        "release": f"{meta.get('namespace')}/{meta.get('name')}",
        "rollout": f"{rollout.get('namespace')}/{rollout.get('name')}",
        "phase": status.get("phase"),
        "reason": status.get("reason", ""),
        "message": status.get("message", ""),
        "currentWave": status.get("currentWave"),
        "startedAt": status.get("startedAt"),
        "finishedAt": status.get("finishedAt"),
        "waves": waves,
    }


def status_view(raw: Mapping[str, Any], *, now: datetime | None = None) -> RenderableType:
    """The matrix: one row per wave, one column per cluster of the widest wave."""
    document = status_document(raw)
    now = now or datetime.now(UTC)
    width = max((len(w["clusters"]) for w in document["waves"]), default=0)
    phase = str(document["phase"] or "Pending")
    header = Text.from_markup(
        f"release [bold]{document['release']}[/] of {document['rollout']}: "
        f"{_coloured(phase)}"
        + (f" ({document['reason']})" if document["reason"] else "")
        + (f", started {age(document['startedAt'], now=now)} ago" if document["startedAt"] else "")
    )
    matrix = Table(box=None, pad_edge=False)
    matrix.add_column("WAVE")
    matrix.add_column("PHASE")
    for index in range(width):
        matrix.add_column(f"CLUSTER {index + 1}" if width > 1 else "CLUSTER")
    for wave in document["waves"]:
        wave_phase = str(wave["phase"])
        label = _coloured(wave_phase)
        if wave_phase == "Soaking" and wave.get("soakUntil"):
            label += f" until {str(wave['soakUntil'])[11:19]}"
        cells = [
            f"{c['name']} {_coloured(str(c.get('phase') or 'Pending'))}" for c in wave["clusters"]
        ]
        matrix.add_row(wave["name"], label, *cells, *([""] * (width - len(cells))))
    parts: list[RenderableType] = [header, matrix]
    if document["message"]:
        parts.append(Text(document["message"]))
    details = _details(document)
    if details is not None:
        parts.append(details)
    return Group(*parts)


def _details(document: Mapping[str, Any]) -> Table | None:
    rows = []
    for wave in document["waves"]:
        for cluster in wave["clusters"]:
            phase = str(cluster.get("phase") or "Pending")
            if phase == "Pending" and not cluster.get("message"):
                continue
            detail = cluster.get("lastError") or cluster.get("message") or ""
            if cluster.get("reason") and cluster.get("reason") not in detail:
                detail = f"{cluster['reason']}: {detail}"
            for evidence in cluster.get("evidence") or []:
                detail += f"\n  {evidence.get('metric')}={evidence.get('value')} " + (
                    f"({evidence.get('phase')}) {evidence.get('message') or ''}".rstrip()
                )
            revision = cluster.get("revision") or "-"
            if cluster.get("previousRevision") and cluster.get("previousRevision") != revision:
                revision = f"{cluster['previousRevision']} -> {revision}"
            rows.append(
                (
                    cluster["name"],
                    _coloured(phase),
                    revision,
                    cluster.get("memberPhase") or "-",
                    detail,
                )
            )
    if not rows:
        return None
    table = Table(box=None, pad_edge=False)
    for column in ("CLUSTER", "PHASE", "REVISION", "MEMBER", "DETAIL"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


# --------------------------------------------------------------------------- --wait


def judge_release(raw: Mapping[str, Any]) -> WaitOutcome | None:
    """The outcome ``--wait`` reports, or None to keep waiting.

    Succeeded is 0; a halted or rolled-back release is 1 (a release rolling back is
    followed until its clusters are back); an invalid Release is 2.
    """
    status = raw.get("status") or {}
    generation = int((raw.get("metadata") or {}).get("generation") or 0)
    if int(status.get("observedGeneration") or 0) < generation:
        return None
    phase, reason = status.get("phase"), str(status.get("reason") or "")
    message = str(status.get("message") or "")
    if phase == "Failed" and reason == "InvalidSpec":
        return WaitOutcome("InvalidSpec", Exit.USAGE, message)
    if phase == "Succeeded":
        return WaitOutcome("Succeeded", Exit.OK, message)
    if phase in ("Failed", "RolledBack"):
        return WaitOutcome(str(phase), Exit.ROLLED_BACK, f"{reason}: {message}".strip(": "))
    return None


class ReleaseNarrator:
    """Progress lines for ``--wait``: each wave and cluster change once, as it happens."""

    def __init__(self) -> None:
        self._seen: set[tuple[Any, ...]] = set()

    def lines(self, raw: Mapping[str, Any]) -> list[str]:
        status = raw.get("status") or {}
        out: list[str] = []

        def once(key: tuple[Any, ...], text: str) -> None:
            if key not in self._seen:
                self._seen.add(key)
                out.append(text)

        for wave in status.get("waves") or []:
            if wave.get("phase") != "Pending":
                once(
                    ("wave", wave.get("name"), wave.get("phase")),
                    f"wave {wave.get('name')}: {wave.get('phase')}",
                )
        for cluster in status.get("clusters") or []:
            if cluster.get("phase") == "Pending" and not cluster.get("reason"):
                continue
            once(
                ("cluster", cluster.get("name"), cluster.get("phase"), cluster.get("reason")),
                f"cluster {cluster.get('name')}: {cluster.get('phase')}"
                + (
                    f" ({cluster.get('reason')}: {cluster.get('message')})"
                    if cluster.get("reason")
                    else ""
                ),
            )
        if status.get("phase") == "Waiting":
            once(("waiting", status.get("message")), f"waiting: {status.get('message')}")
        return out
