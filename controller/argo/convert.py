"""``deployctl convert``: Argo Rollouts manifests rewritten as deployctl ones.

Pure: text in, text and findings out (``convert_text``). A whole multi-document file is
read; ``Rollout``, ``AnalysisTemplate`` and ``ClusterAnalysisTemplate`` documents of
``argoproj.io/v1alpha1`` are rewritten by the field table (``controller.argo.fields``),
every other document is passed through as written. Each finding names the line of the
construct in the input:

- ``not converted``: a feature deployctl does not have (planned or unsupported), a
  condition that is not a plain comparison; left out of the output, which therefore
  may not validate until a person decides.
- ``changed``: converted, with a difference worth knowing (a strict ``<`` became
  ``max``, background analysis moved to ``spec.analysis``...).
- ``dropped``: not needed in deployctl (analysis run history limits...).

Two passes per document: the first walks every field (keeping, renaming, dropping,
removing what is not supported, by the table); the second makes the changes of shape
(conditions into thresholds, ``canary.analysis`` into ``spec.analysis``, the Gateway API
plugin into ``trafficRouting.gatewayAPI``, ``jsonBody`` into ``body``). Comments inside
converted documents are not kept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from controller.api.common import GROUP_VERSION
from controller.argo import conditions, fields

ARGO_VERSION = "argoproj.io/v1alpha1"
CONVERTED_KINDS = {
    "Rollout": "Rollout",
    "AnalysisTemplate": "AnalysisTemplate",
    "ClusterAnalysisTemplate": "AnalysisTemplate",
}
GATEWAY_PLUGIN = "argoproj-labs/gatewayAPI"
Path = tuple[str | int, ...]
FindingKind = Literal["not converted", "changed", "dropped"]


@dataclass(frozen=True)
class Finding:
    line: int
    path: str
    kind: FindingKind
    message: str
    document: int = 0

    def text(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line else source
        path = f" {self.path}:" if self.path else ""
        return f"{where}:{path} {self.kind}: {self.message}"


@dataclass
class Result:
    """The converted file and what a person should know about it."""

    text: str
    findings: list[Finding] = field(default_factory=list)
    converted: int = 0
    passed_through: int = 0

    @property
    def complete(self) -> bool:
        return not any(f.kind == "not converted" for f in self.findings)


def dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _lines(node: yaml.Node, path: Path, out: dict[Path, int]) -> None:
    """The (1-based) line of every key and list item, by path."""
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, str(key.value))
            out[child] = key.start_mark.line + 1
            _lines(value, child, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _lines(item, (*path, index), out)


class _Document:
    """One Argo document being converted, with its line map and findings."""

    def __init__(self, data: dict[str, Any], lines: dict[Path, int], number: int) -> None:
        self.data = data
        self.lines = lines
        self.number = number
        self.findings: list[Finding] = []
        self.resource = "Rollout" if data.get("kind") == "Rollout" else "AnalysisTemplate"

    def line(self, path: Path) -> int:
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 0)

    def say(self, path: Path, kind: FindingKind, message: str) -> None:
        self.findings.append(Finding(self.line(path), dotted(path), kind, message, self.number))

    # ------------------------------------------------------------ pass 1: field by field

    def walk(self, value: Any, path: Path) -> Any:
        if isinstance(value, dict):
            kept: dict[str, Any] = {}
            for key, item in value.items():
                child = (*path, str(key))
                outcome = self.field(item, child)
                if isinstance(outcome, _Rename):
                    kept[outcome.name] = self.walk(item, child)
                elif outcome is not _REMOVE:
                    kept[key] = outcome
            value.clear()
            value.update(kept)  # in place: pass 2 holds references into the document
            return value
        if isinstance(value, list):
            was_empty = [isinstance(item, dict) and not item for item in value]
            items = [self.walk(item, (*path, index)) for index, item in enumerate(value)]
            # A step whose only field was not converted is left out, not left empty.
            return [
                item
                for item, empty in zip(items, was_empty, strict=True)
                if empty or not (isinstance(item, dict) and not item)
            ]
        return value

    def field(self, value: Any, path: Path) -> Any:
        concrete = dotted(path)
        row = fields.lookup(self.resource, concrete)
        below = _rows_below(self.resource, concrete)
        if row is None or (row.status in fields.NOT_SUPPORTED and below):
            if below:
                return self.walk(value, path)
            if row is None:
                self.say(path, "not converted", "not an Argo Rollouts field deployctl knows")
                return _REMOVE
        assert row is not None
        if row.status in fields.NOT_SUPPORTED:
            self.say(path, "not converted", fields.not_supported_message(row))
            return _REMOVE
        if row.status == "dropped":
            if _covers(row, concrete):
                self.say(path, "dropped", row.note or "not needed in deployctl")
            return _REMOVE
        if row.status == "renamed" and _covers(row, concrete):
            return _Rename(row.ours)
        return self.walk(value, path)

    # ------------------------------------------------------------ pass 2: shapes

    def reshape(self) -> None:
        self.data["apiVersion"] = GROUP_VERSION
        if self.data.get("kind") == "ClusterAnalysisTemplate":
            self.data["kind"] = "AnalysisTemplate"
            (self.data.get("metadata") or {}).pop("namespace", None)
            self.say(
                ("kind",),
                "changed",
                "ClusterAnalysisTemplate became an AnalysisTemplate: apply it in each "
                "namespace whose Rollouts use it",
            )
        spec = self.data.get("spec")
        if not isinstance(spec, dict):
            return
        if self.resource == "Rollout":
            self.rollout(spec)
            return
        kept = []
        for index, metric in enumerate(spec.get("metrics") or []):
            where: Path = ("spec", "metrics", index)
            if isinstance(metric, dict) and metric.get("provider") == {}:
                self.say(
                    where,
                    "not converted",
                    f"metric {metric.get('name')!r} left out: deployctl has none of its provider",
                )
                continue
            if isinstance(metric, dict):
                self.metric(metric, where)
            kept.append(metric)
        if "metrics" in spec:
            spec["metrics"] = kept

    def rollout(self, spec: dict[str, Any]) -> None:
        strategy = spec.get("strategy") or {}
        canary = strategy.get("canary") if isinstance(strategy, dict) else None
        if not isinstance(canary, dict):
            canary = {}
        for ref, where in _analysis_refs(spec):
            for index, template in enumerate(ref.get("templates") or []):
                if isinstance(template, dict) and template.pop("clusterScope", None):
                    self.say(
                        (*where, "templates", index, "clusterScope"),
                        "changed",
                        "clusterScope dropped: convert the ClusterAnalysisTemplate too and apply "
                        "it as an AnalysisTemplate in this namespace",
                    )
        if spec.get("analysis") == {}:
            del spec["analysis"]
        background = canary.pop("analysis", None)
        if background is not None:
            where = ("spec", "strategy", "canary", "analysis")
            if "analysis" in spec:
                self.say(where, "not converted", "spec.analysis is already set")
            else:
                spec["analysis"] = background
                self.say(
                    where,
                    "changed",
                    "background analysis moved to spec.analysis (its place for every strategy)",
                )
        routing = canary.get("trafficRouting")
        if isinstance(routing, dict):
            plugins = routing.pop("plugins", None) or {}
            gateway = plugins.get(GATEWAY_PLUGIN) if isinstance(plugins, dict) else None
            if isinstance(gateway, dict) and "httpRoute" in gateway:
                routing["gatewayAPI"] = {"httpRoute": gateway["httpRoute"]}
            if not routing:
                del canary["trafficRouting"]

    def metric(self, metric: dict[str, Any], where: Path) -> None:
        provider = metric.get("provider") or {}
        is_job = isinstance(provider, dict) and "job" in provider
        # A Job check runs once unless told otherwise, in Argo and here alike.
        if "interval" not in metric and "count" not in metric and not is_job:
            metric["count"] = 1
            self.say(
                where,
                "changed",
                "no interval: Argo measures once, so count: 1 was added (deployctl would "
                "otherwise measure every 30s for as long as the step runs)",
            )
        web = provider.get("web") if isinstance(provider, dict) else None
        if isinstance(web, dict) and "jsonBody" in web:
            web["body"] = json.dumps(web.pop("jsonBody"), separators=(",", ":"))
            if web.get("method", "GET") == "GET":
                web["method"] = "POST"
            self.say(
                (*where, "provider", "web", "jsonBody"),
                "changed",
                "jsonBody written as a JSON body; method POST",
            )
        success = metric.pop("successCondition", None)
        failure = metric.pop("failureCondition", None)
        if success is None and failure is None:
            if isinstance(provider, dict) and "prometheus" in provider:
                self.say(
                    where,
                    "not converted",
                    "no successCondition or failureCondition: Argo counts every measurement "
                    "as successful; a deployctl prometheus metric needs a threshold",
                )
            return
        condition_path = (*where, "successCondition" if success is not None else "failureCondition")
        if is_job:
            self.say(
                condition_path,
                "dropped",
                "a Job's outcome is its verdict; the condition is not used",
            )
            return
        try:
            reading = conditions.read(
                str(success) if success is not None else None,
                str(failure) if failure is not None else None,
            )
        except conditions.Unreadable as exc:
            self.say(condition_path, "not converted", f"{exc}; write a threshold by hand")
            return
        self.apply(metric, reading, web, condition_path)

    def apply(
        self,
        metric: dict[str, Any],
        reading: conditions.Reading,
        web: dict[str, Any] | None,
        where: Path,
    ) -> None:
        if web is not None:
            base = str(web.get("jsonPath") or "$").strip()
            if base.startswith("{") and base.endswith("}"):
                base = base[1:-1].strip()
            if reading.path or web.get("jsonPath") is not None:
                web["jsonPath"] = (base if base.startswith("$") else f"$.{base}") + reading.path
            if reading.equals is not None:
                web["equals"] = reading.equals
        elif reading.equals is not None or reading.path:
            self.say(where, "not converted", "compares with == or a field: only web checks can")
            return
        bounds = reading.threshold()
        if bounds:
            metric["threshold"] = bounds
        if web is not None and "jsonPath" not in web and (bounds or reading.equals is not None):
            self.say(where, "not converted", "a web check's condition needs a JSON value")
            return
        if bounds:
            text = "condition read as threshold " + ", ".join(
                f"{k} {v:g}" for k, v in bounds.items()
            )
        elif web is not None and reading.equals is not None:
            text = f"condition read as jsonPath {web['jsonPath']} equals {reading.equals!r}"
        else:
            text = "condition read as the reply's status code"
        self.say(where, "changed", "; ".join([text, *reading.notes]))


@dataclass(frozen=True)
class _Rename:
    name: str


_REMOVE = object()


def _covers(row: fields.ArgoField, concrete: str) -> bool:
    """Whether ``concrete`` is the row's own field (not something below it)."""
    return fields.normalize(concrete) in row.paths()


def _rows_below(resource: str, concrete: str) -> bool:
    """Whether the table has rows for fields under ``concrete``."""
    base = fields.normalize(concrete)
    wanted = "AnalysisTemplate" if resource == "ClusterAnalysisTemplate" else resource
    return any(
        path.startswith((base + ".", base + "[]"))
        for row in fields.TABLE
        if row.resource == wanted
        for path in row.paths()
    )


def _analysis_refs(spec: dict[str, Any]) -> list[tuple[dict[str, Any], Path]]:
    strategy = spec.get("strategy") or {}
    out: list[tuple[dict[str, Any], Path]] = []
    canary = strategy.get("canary") or {}
    for index, step in enumerate(canary.get("steps") or []):
        if isinstance(step, dict) and isinstance(step.get("analysis"), dict):
            out.append(
                (step["analysis"], ("spec", "strategy", "canary", "steps", index, "analysis"))
            )
    if isinstance(canary.get("analysis"), dict):
        out.append((canary["analysis"], ("spec", "strategy", "canary", "analysis")))
    blue_green = strategy.get("blueGreen") or {}
    for key in ("prePromotionAnalysis", "postPromotionAnalysis"):
        if isinstance(blue_green.get(key), dict):
            out.append((blue_green[key], ("spec", "strategy", "blueGreen", key)))
    return out


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings (PromQL queries stay readable)."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(document: Any) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=10_000, allow_unicode=True)


def convert_text(text: str) -> Result:
    """Every document of ``text``; raises ``yaml.YAMLError`` for text that is not YAML."""
    loader = yaml.SafeLoader(text)
    result = Result(text="")
    pieces: list[str] = []
    number = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            number += 1
            data = loader.construct_document(node)
            if data is None:
                continue
            argo = (
                isinstance(data, dict)
                and data.get("apiVersion") == ARGO_VERSION
                and data.get("kind") in CONVERTED_KINDS
            )
            if not argo:
                if isinstance(data, dict) and str(data.get("apiVersion", "")).startswith(
                    "argoproj.io/"
                ):
                    result.findings.append(
                        Finding(
                            node.start_mark.line + 1,
                            "kind",
                            "not converted",
                            f"deployctl has no {data.get('kind')!r} (Argo Rollouts "
                            f"{data.get('kind')}); left out; see docs/argo.md",
                            number,
                        )
                    )
                    continue
                pieces.append(text[node.start_mark.index : node.end_mark.index].rstrip() + "\n")
                result.passed_through += 1
                continue
            lines: dict[Path, int] = {}
            _lines(node, (), lines)
            document = _Document(data, lines, number)
            document.walk(data, ())
            document.reshape()
            result.findings += document.findings
            pieces.append(dump(data))
            result.converted += 1
    finally:
        loader.dispose()
    result.text = "---\n".join(pieces)
    result.findings.sort(key=lambda f: (f.document, f.line))
    return result
