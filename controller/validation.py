"""Explain what is wrong with a resource, in terms a person can act on.

Called by ``deployctl validate`` (every problem of every document in a file), by
``deployctl rollout -f`` and by the reconciler (an invalid Rollout gets the InvalidSpec
condition and an Event with the same text). Each problem names the field path as it is
written in YAML (``spec.strategy.canary.steps[2].setWeight``) and what is allowed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from controller.api import AnalysisTemplate, Rollout
from controller.api.common import GROUP_VERSION
from controller.api.release import ClusterTarget, Release

MODELS: Mapping[str, type[BaseModel]] = {
    "Rollout": Rollout,
    "AnalysisTemplate": AnalysisTemplate,
    "Release": Release,
    "ClusterTarget": ClusterTarget,
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one document."""

    path: str
    message: str
    document: str = ""

    def __str__(self) -> str:
        where = f"{self.document}: " if self.document else ""
        return f"{where}{self.path}: {self.message}" if self.path else f"{where}{self.message}"


@dataclass(frozen=True)
class Parsed:
    """A document read from a file: its model when valid, else its problems."""

    kind: str
    name: str
    raw: Mapping[str, Any]
    model: BaseModel | None
    problems: tuple[Problem, ...]


def _path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or "[" in str(part):
            # pydantic inserts validator names and union tags into loc; they mean nothing here.
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def _message(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = error.get("input")
    shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
    if kind == "extra_forbidden":
        return "unknown field; check the spelling against docs/reference.md"
    if kind == "missing":
        return "required field is missing"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        bounds = {
            "greater_than_equal": f">= {ctx.get('ge')}",
            "less_than_equal": f"<= {ctx.get('le')}",
            "greater_than": f"> {ctx.get('gt')}",
            "less_than": f"< {ctx.get('lt')}",
        }[kind]
        return f"must be {bounds}{shown}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}{shown}"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx.get('pattern')}{shown}"
    if kind in ("too_long", "too_short"):
        return str(error["msg"]).replace("List", "list").replace("String", "string")
    text = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        text = text.removeprefix(prefix)
    return f"{text}{shown}" if kind.endswith("_type") or kind.endswith("_parsing") else text


def problems_of(error: ValidationError, *, document: str = "") -> tuple[Problem, ...]:
    """pydantic's errors as Problems, de-duplicated (unions report one error per arm)."""
    seen: dict[tuple[str, str], None] = {}
    for item in error.errors(include_url=False):
        seen[(_path(item["loc"]), _message(item))] = None
    return tuple(Problem(path, message, document) for path, message in seen)


def parse_document(raw: Any, *, label: str = "") -> Parsed:
    """Validate one decoded YAML/JSON document against the model its ``kind`` names."""
    if not isinstance(raw, Mapping):
        return Parsed("", "", {}, None, (Problem("", "a document must be a mapping", label),))
    kind = str(raw.get("kind", ""))
    name = (
        str((raw.get("metadata") or {}).get("name", ""))
        if isinstance(raw.get("metadata"), Mapping)
        else ""
    )
    document = label or f"{kind or 'document'}/{name or '?'}"
    model = MODELS.get(kind)
    if model is None:
        allowed = ", ".join(MODELS)
        return Parsed(
            kind,
            name,
            raw,
            None,
            (Problem("kind", f"unknown kind {kind!r}; allowed: {allowed}", document),),
        )
    if raw.get("apiVersion") != GROUP_VERSION:
        return Parsed(
            kind,
            name,
            raw,
            None,
            (
                Problem(
                    "apiVersion",
                    f"must be {GROUP_VERSION} (got {raw.get('apiVersion')!r})",
                    document,
                ),
            ),
        )
    try:
        return Parsed(kind, name, raw, model.model_validate(raw), ())
    except ValidationError as exc:
        return Parsed(kind, name, raw, None, problems_of(exc, document=document))


def load_documents(text: str, *, source: str = "") -> list[Parsed]:
    """Every document of a (multi-document) YAML text, parsed; YAML errors become problems."""
    try:
        raw_docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return [Parsed("", "", {}, None, (Problem("", f"invalid YAML: {where}{problem}", source),))]
    parsed = []
    for index, raw in enumerate(raw_docs):
        label = f"{source}#{index + 1}" if source and len(raw_docs) > 1 else source
        doc = parse_document(raw, label="")
        if label:
            doc = Parsed(
                doc.kind,
                doc.name,
                doc.raw,
                doc.model,
                tuple(
                    Problem(p.path, p.message, f"{label} ({doc.kind or '?'}/{doc.name or '?'})")
                    for p in doc.problems
                ),
            )
        parsed.append(doc)
    return parsed


def reference_problems(
    rollout: Rollout,
    *,
    templates: Iterable[str],
    document: str = "",
    invalid: Mapping[str, str] | None = None,
) -> tuple[Problem, ...]:
    """An analysis naming a template that does not exist (with the names that do), or
    one that exists but is invalid (``invalid``: name -> its problems)."""
    known = sorted(set(templates))
    broken = invalid or {}
    problems = []
    for path, ref in _analysis_paths(rollout):
        for index, template in enumerate(ref.templates):
            if template.name in broken and template.name not in known:
                problems.append(
                    Problem(
                        f"{path}.templates[{index}].name",
                        f"AnalysisTemplate {template.name!r} is invalid: {broken[template.name]}",
                        document,
                    )
                )
            elif template.name not in known:
                hint = f"; known: {', '.join(known)}" if known else "; no AnalysisTemplate found"
                problems.append(
                    Problem(
                        f"{path}.templates[{index}].name",
                        f"unknown AnalysisTemplate {template.name!r}{hint}",
                        document,
                    )
                )
    return tuple(problems)


def _analysis_paths(rollout: Rollout) -> list[tuple[str, Any]]:
    spec = rollout.spec
    out: list[tuple[str, Any]] = []
    if spec.analysis is not None:
        out.append(("spec.analysis", spec.analysis))
    if spec.strategy.canary is not None:
        for index, step in enumerate(spec.strategy.canary.steps):
            if step.analysis is not None:
                out.append((f"spec.strategy.canary.steps[{index}].analysis", step.analysis))
    if spec.strategy.blue_green is not None:
        bg = spec.strategy.blue_green
        base = "spec.strategy.blueGreen"
        if bg.pre_promotion_analysis is not None:
            out.append((f"{base}.prePromotionAnalysis", bg.pre_promotion_analysis))
        if bg.post_promotion_analysis is not None:
            out.append((f"{base}.postPromotionAnalysis", bg.post_promotion_analysis))
    if spec.strategy.rolling is not None:
        for index, gate in enumerate(spec.strategy.rolling.gates):
            out.append((f"spec.strategy.rolling.gates[{index}].analysis", gate.analysis))
    return out


def validate_documents(
    docs: Sequence[Parsed], *, extra_templates: Iterable[str] = (), check_references: bool = True
) -> list[Problem]:
    """All problems of a set of documents, cross-references included."""
    problems = [p for doc in docs for p in doc.problems]
    if not check_references:
        return problems
    templates = {d.name for d in docs if d.kind == "AnalysisTemplate"} | set(extra_templates)
    for doc in docs:
        if isinstance(doc.model, Rollout):
            problems += reference_problems(
                doc.model, templates=templates, document=f"Rollout/{doc.name}"
            )
    return problems
