"""The Argo-style corpus (``tests/argo/corpus``, written for this project) handled as
docs/argo.md says: every row of the field table appears in it; ``deployctl convert``
reports exactly the lines marked ``# expect: <kind>``; what converts completely
validates and plans; ``deployctl validate`` on the same documents (only ``apiVersion``
changed) names each Argo field by what the table says of it, the real cause first."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from controller.api import Rollout
from controller.argo import fields
from controller.argo.convert import ARGO_VERSION, convert_text
from controller.cli import app
from controller.validation import is_other_kind, load_documents, parse_document, validate_documents
from strategies.preview import preview

CORPUS = sorted((Path(__file__).parent / "corpus").glob("*.yaml"))
MARK = re.compile(r"#\s*expect:\s*(not converted|changed|dropped)\s*$")
EXPECTED_TEXT = {
    "renamed": "(renamed: {old} -> {ours})",
    "converted": "`deployctl convert` rewrites it",
    "dropped": "is not needed in deployctl",
    "planned": "not supported by deployctl yet (Argo Rollouts feature: {feature})",
    "unsupported": "not supported by deployctl (Argo Rollouts feature: {feature})",
}


def marks(path: Path) -> set[tuple[int, str]]:
    return {
        (number, match.group(1))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if (match := MARK.search(line))
    }


def argo_documents(path: Path) -> list[dict[str, Any]]:
    return [
        d
        for d in yaml.safe_load_all(path.read_text())
        if isinstance(d, dict) and d.get("apiVersion") == ARGO_VERSION
    ]


def key_paths(value: Any, prefix: str = "") -> Iterator[str]:
    """Every field of a document as a concrete path (``spec.strategy.canary.steps[1].pause``)."""
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            yield path
            yield from key_paths(item, path)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from key_paths(item, f"{prefix}[{index}]")


def resource(document: dict[str, Any]) -> str:
    return "Rollout" if document["kind"] == "Rollout" else "AnalysisTemplate"


def has_rows_below(kind: str, path: str) -> bool:
    base = fields.normalize(path)
    return any(
        p.startswith((base + ".", base + "[]"))
        for row in fields.TABLE
        if row.resource == kind
        for p in row.paths()
    )


def test_the_corpus_covers_every_row_and_every_field_in_it_has_one() -> None:
    decided: set[fields.ArgoField] = set()
    for path in CORPUS:
        for document in argo_documents(path):
            kind = resource(document)
            for field_path in key_paths(document):
                row = fields.lookup(kind, field_path)
                if row is None:
                    assert has_rows_below(kind, field_path), (
                        f"{path.name}: {field_path} not in the table"
                    )
                    continue
                decided.add(row)
    missing = [f"{r.resource} {r.argo}" for r in fields.TABLE if r not in decided]
    assert not missing, f"rows with no example in tests/argo/corpus: {missing}"


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_convert_reports_exactly_the_marked_lines(path: Path) -> None:
    result = convert_text(path.read_text())
    found = {(f.line, f.kind) for f in result.findings}
    assert found == marks(path), "\n".join(f.text(path.name) for f in result.findings)
    assert result.complete == (not any(kind == "not converted" for _, kind in marks(path)))
    cli = CliRunner().invoke(app, ["convert", "-f", str(path)])
    assert cli.exit_code == (0 if result.complete else 1)


@pytest.mark.parametrize(
    "path",
    [p for p in CORPUS if not any(kind == "not converted" for _, kind in marks(p))],
    ids=lambda p: p.name,
)
def test_what_converts_completely_validates_and_plans(path: Path) -> None:
    docs = [d for d in load_documents(convert_text(path.read_text()).text) if not is_other_kind(d)]
    assert validate_documents(docs) == []
    for doc in docs:
        if isinstance(doc.model, Rollout):
            assert preview(doc.model)
    # Argo's spellings are gone from the output.
    converted = convert_text(path.read_text()).text
    for old in ("templateName", "timeoutSeconds", "successCondition", "jsonBody", "plugins"):
        assert old not in converted
    assert "key:" not in converted or "secretKeyRef" in converted


def swapped(document: dict[str, Any]) -> dict[str, Any]:
    """The document as an Argo user first tries it: only the apiVersion changed."""
    copied = copy.deepcopy(document)
    copied["apiVersion"] = "deployctl.io/v1alpha1"
    return copied


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_validate_names_each_argo_field_as_the_table_says(path: Path) -> None:
    for document in argo_documents(path):
        problems = parse_document(swapped(document)).problems
        if document["kind"] == "ClusterAnalysisTemplate":
            [problem] = problems
            assert problem.path == "kind" and "`deployctl convert`" in problem.message
            continue
        by_path = {p.path: p.message for p in problems}
        reported: list[str] = []
        kind = resource(document)
        for field_path in key_paths(document):
            row = fields.lookup(kind, field_path)
            if row is None or field_path == "apiVersion":
                continue
            if any(field_path.startswith((r + ".", r + "[")) for r in reported):
                continue  # reported at the field that contains it
            own = fields.normalize(field_path) in row.paths()
            if row.status in ("same", "partial") or not own:
                assert field_path not in by_path, f"{field_path}: {by_path.get(field_path)}"
                continue
            old = field_path.rsplit(".", 1)[-1]
            expected = EXPECTED_TEXT[row.status].format(old=old, ours=row.ours, feature=row.feature)
            assert field_path in by_path, f"{path.name}: nothing said of {field_path}: {by_path}"
            assert expected in by_path[field_path], by_path[field_path]
            if row.status in ("planned", "unsupported"):
                assert by_path[field_path].endswith("see docs/argo.md")
            reported.append(field_path)
        messages = [p.message for p in problems]
        missing = [i for i, m in enumerate(messages) if m == "required field is missing"]
        causes = [i for i, m in enumerate(messages) if m != "required field is missing"]
        assert not missing or not causes or max(causes) < min(missing), messages


def test_validate_sends_argo_manifests_to_convert() -> None:
    [document] = argo_documents(CORPUS[0])[:1]
    [problem] = parse_document(document).problems
    assert problem.path == "apiVersion"
    assert (
        "Argo Rollouts manifest" in problem.message
        and "`deployctl convert -f FILE`" in problem.message
    )


def test_the_docs_table_is_the_field_table() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "argo.md").read_text()
    begin, end = "<!-- table: generated from controller/argo/fields.py -->", "<!-- end of table -->"
    assert begin in text and end in text
    written = text.split(begin, 1)[1].split(end, 1)[0].strip()
    assert written == fields.markdown_table().strip(), (
        "docs/argo.md is out of date: run `make crds`"
    )
