"""How many of Argo Rollouts' own manifests deployctl takes: as written, or after
``deployctl convert``. Not a test (it measures, it does not assert); docs/argo.md quotes
its figures.

Reads a checkout of Argo Rollouts (its ``examples/``, ``docs/`` with the YAML blocks of
its Markdown pages, and ``test/e2e/``) and sorts every ``argoproj.io`` ``Rollout``,
``AnalysisTemplate`` and ``ClusterAnalysisTemplate`` document into one of:

- ``accepted as written``: valid with only ``apiVersion`` changed;
- ``converted``: ``deployctl convert`` converts everything and the result is valid;
- ``converted, still invalid``: converted completely, but the result has problems (the
  first problem's message is tallied);
- ``needs a feature deployctl lacks``: ``convert`` names a construct it could not
  convert (each construct's field path is tallied);
- ``not YAML``: the file or block does not parse as published (Helm templates, elided
  examples); each ``kind:`` line of ours counts as one document.

Cross-references between documents are not checked: examples refer to templates that
live in other files.

    .venv/bin/python -m tests.bench.argo_corpus PATH/TO/argo-rollouts
"""

from __future__ import annotations

import re
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from controller.api.common import GROUP_VERSION
from controller.argo.convert import ARGO_VERSION, CONVERTED_KINDS, convert_text
from controller.validation import load_documents, parse_document

AREAS = ("examples", "docs", "test/e2e")
# Fenced YAML blocks, also indented ones (inside list items and tabs).
FENCE = re.compile(r"^([ \t]*)```ya?ml[^\n]*\n(.*?)^\1```", re.MULTILINE | re.DOTALL)
KIND_LINE = re.compile(r"^kind:\s*(Rollout|AnalysisTemplate|ClusterAnalysisTemplate)\s*$", re.M)
OUTCOMES = (
    "accepted as written",
    "converted",
    "converted, still invalid",
    "needs a feature deployctl lacks",
    "not YAML",
)


def sources(root: Path) -> Iterator[tuple[str, str]]:
    """(label, YAML text) for every YAML file and every Markdown YAML block."""
    for area in AREAS:
        for path in sorted((root / area).rglob("*")):
            relative = str(path.relative_to(root))
            if path.suffix in (".yaml", ".yml"):
                yield relative, path.read_text(errors="replace")
            elif path.suffix == ".md":
                text = path.read_text(errors="replace")
                for number, (_, block) in enumerate(FENCE.findall(text), start=1):
                    yield f"{relative}#block{number}", textwrap.dedent(block)


def is_argo(document: Any) -> bool:
    return (
        isinstance(document, dict)
        and document.get("apiVersion") == ARGO_VERSION
        and document.get("kind") in CONVERTED_KINDS
    )


def classify(document: dict[str, Any], why: Counter[str]) -> str:
    """The outcome of one Argo document; reasons are tallied in ``why``."""
    as_written = dict(document, apiVersion=GROUP_VERSION)
    if not parse_document(as_written).problems:
        return "accepted as written"
    result = convert_text(yaml.safe_dump(document, sort_keys=False))
    missing = [f for f in result.findings if f.kind == "not converted"]
    if missing:
        for finding in missing:
            # Indexes vary per document; the construct is the path without them.
            why[re.sub(r"\[\d+\]", "[]", finding.path) or finding.message] += 1
        return "needs a feature deployctl lacks"
    problems = [p for doc in load_documents(result.text) for p in doc.problems]
    if problems:
        why[f"{problems[0].path}: {problems[0].message[:90]}"] += 1
        return "converted, still invalid"
    return "converted"


def measure(root: Path) -> tuple[Counter[str], dict[str, Counter[str]]]:
    outcomes: Counter[str] = Counter()
    reasons: dict[str, Counter[str]] = {outcome: Counter() for outcome in OUTCOMES}
    for label, text in sources(root):
        try:
            documents = list(yaml.safe_load_all(text))
        except yaml.YAMLError:
            count = len(KIND_LINE.findall(text))
            outcomes["not YAML"] += count
            if count:
                reasons["not YAML"][label] += count
            continue
        for document in documents:
            if is_argo(document):
                why: Counter[str] = Counter()
                outcome = classify(document, why)
                outcomes[outcome] += 1
                reasons[outcome].update(why)
    return outcomes, reasons


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: python -m tests.bench.argo_corpus PATH/TO/argo-rollouts", file=sys.stderr)
        return 2
    outcomes, reasons = measure(Path(argv[0]))
    total = sum(outcomes.values())
    print(f"{total} Argo Rollouts documents (Rollout, AnalysisTemplate, ClusterAnalysisTemplate)")
    for outcome in OUTCOMES:
        share = 100 * outcomes[outcome] / total if total else 0.0
        print(f"{outcome:34} {outcomes[outcome]:4}  ({share:.0f}%)")
    for outcome in OUTCOMES[2:]:
        if reasons[outcome]:
            print(f"\n{outcome}, most common:")
            for reason, count in reasons[outcome].most_common(15):
                print(f"  {count:4}  {reason}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
