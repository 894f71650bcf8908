"""Explain what is wrong with a resource, in terms a person can act on.

Called by ``deployctl validate`` (every problem of every document in a file), by
``deployctl rollout -f`` and by the reconciler (an invalid Rollout gets the InvalidSpec
condition and an Event with the same text). Each problem names the field path as it is
written in YAML (``spec.strategy.canary.steps[2].setWeight``) and what is allowed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from controller.api import AnalysisTemplate, Rollout
from controller.api.common import (
    ARG_NAME_PATTERN,
    DNS_LABEL,
    FIELD_PATH_PATTERN,
    GROUP_VERSION,
    SECRET_KEY_PATTERN,
)
from controller.api.release import ClusterTarget, Release
from controller.argo.fields import hint as argo_hint
from controller.argo.fields import lookup as lookup_argo

MODELS: Mapping[str, type[BaseModel]] = {
    "Rollout": Rollout,
    "AnalysisTemplate": AnalysisTemplate,
    "Release": Release,
    "ClusterTarget": ClusterTarget,
}
ARGO_KINDS: Mapping[str, str] = {
    "ClusterAnalysisTemplate": "Argo Rollouts' ClusterAnalysisTemplate: `deployctl convert` "
    "makes it an AnalysisTemplate to apply in each namespace; see docs/argo.md",
    "AnalysisRun": "Argo Rollouts' AnalysisRun: deployctl keeps analysis runs in the "
    "Rollout's status",
    "Experiment": "Argo Rollouts' Experiment: not supported by deployctl; see docs/argo.md",
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


# Each pattern of the models, said in words (a test checks that none is missing).
PATTERN_WORDS: Mapping[str, str] = {
    DNS_LABEL: "a DNS label: lowercase letters, digits and '-', starting and ending with a "
    "letter or digit (at most 63 characters)",
    r"^https?://[^\s]+$": "an http:// or https:// URL without spaces",
    r"^/[^\s]*$": "a path starting with '/', without spaces",
    r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$": "an HTTP header name: letters, digits and "
    "!#$%&'*+.^_`|~- (at most 128)",
    r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$": "an HTTP header name: letters, digits and !#$%&'*+.^_`|~-",
    SECRET_KEY_PATTERN: "a Secret key: letters, digits, '-', '_' and '.'",
    r"^[a-z0-9.-]+$": "a Kubernetes name: lowercase letters, digits, '.' and '-'",
    r"^(100|[1-9]?[0-9])%$": "a whole percentage from 0% to 100%, e.g. '25%'",
    r"^[a-zA-Z_:][a-zA-Z0-9_:]*$": "a Prometheus metric name: letters, digits, '_' and ':', "
    "not starting with a digit",
    r"^[a-zA-Z_][a-zA-Z0-9_]*$": "a Prometheus label name: letters, digits and '_', not "
    "starting with a digit",
    ARG_NAME_PATTERN: "letters, digits, '_' and '-', starting with a letter or '_'",
    FIELD_PATH_PATTERN: "a field path such as metadata.name, metadata.labels['app'] or "
    "spec.template.spec.containers[0].image",
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9]*[a-z0-9])?$": "namespace/name, "
    "e.g. staging/checkout",
}


def shown_value(value: Any) -> str:
    """A value as YAML writes it: null, true, 3, "text"."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _message(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = error.get("input")
    shown = "" if isinstance(got, dict | list) else f" (got {shown_value(got)})"
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
        pattern = str(ctx.get("pattern"))
        words = PATTERN_WORDS.get(pattern)
        return f"must be {words}{shown}" if words else f"must match {pattern}{shown}"
    if kind in ("too_long", "too_short"):
        return str(error["msg"]).replace("List", "list").replace("String", "string")
    text = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        text = text.removeprefix(prefix)
    return f"{text}{shown}" if kind.endswith("_type") or kind.endswith("_parsing") else text


def problems_of(
    error: ValidationError, *, document: str = "", kind: str = ""
) -> tuple[Problem, ...]:
    """pydantic's errors as Problems, de-duplicated (unions report one error per arm).

    With ``kind``, an unknown field that Argo Rollouts has is explained from the field
    table (renamed, converted, not supported: which feature), a required field whose
    Argo spelling is present is not reported twice, and the real cause comes first:
    unknown and unsupported fields before what is missing because of them.
    """
    seen: dict[tuple[str, str], None] = {}
    renamed: set[str] = set()
    for item in error.errors(include_url=False):
        path = _path(item["loc"])
        message = _message(item)
        if item["type"] == "extra_forbidden" and kind:
            row = lookup_argo(kind, path)
            if row is not None and row.status not in ("same", "partial"):
                message = argo_hint(row)
                if row.status == "renamed":
                    renamed.add(path.rsplit(".", 1)[0] + "." + row.ours)
        seen[(path, message)] = None
    found = [
        (path, message)
        for path, message in seen
        if not (message == "required field is missing" and path in renamed)
    ]
    # Unknown fields first: a missing gatewayAPI is a consequence of an unsupported router.
    found.sort(key=lambda item: 0 if _is_unknown(item[1]) else 1)
    return tuple(Problem(path, message, document) for path, message in found)


def _is_unknown(message: str) -> bool:
    return message.startswith(("unknown field", "not supported", "Argo Rollouts'"))


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
    api_version = str(raw.get("apiVersion", ""))
    if api_version.startswith("argoproj.io/"):
        return Parsed(
            kind,
            name,
            raw,
            None,
            (
                Problem(
                    "apiVersion",
                    f"this is an Argo Rollouts manifest ({api_version} {kind}); "
                    "`deployctl convert -f FILE` rewrites it for deployctl (see docs/argo.md)",
                    document,
                ),
            ),
        )
    if model is None:
        allowed = ", ".join(MODELS)
        argo_kind = ARGO_KINDS.get(kind)
        hint = f" ({argo_kind})" if argo_kind else ""
        return Parsed(
            kind,
            name,
            raw,
            None,
            (Problem("kind", f"unknown kind {kind!r}; allowed: {allowed}{hint}", document),),
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
    unnamed: tuple[Problem, ...] = ()
    if not name:
        unnamed = (
            Problem(
                "metadata.name",
                f"required: every {kind} needs a name (it names its ReplicaSets, Jobs and "
                "Events; nothing is called 'rollout' by default)",
                document,
            ),
        )
    try:
        validated = model.model_validate(raw)
    except ValidationError as exc:
        return Parsed(
            kind, name, raw, None, unnamed + problems_of(exc, document=document, kind=kind)
        )
    if unnamed:
        return Parsed(kind, name, raw, None, unnamed)
    return Parsed(kind, name, raw, validated, ())


def is_other_kind(doc: Parsed) -> bool:
    """A document of another API (a Service, a Deployment): neither ours nor Argo's."""
    api_version = str(doc.raw.get("apiVersion", ""))
    return (
        bool(doc.kind)
        and doc.kind not in MODELS
        and doc.kind not in ARGO_KINDS
        and not api_version.startswith(("deployctl.io/", "argoproj.io/"))
    )


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
