"""Promotion gates: the same images must have been promoted by the required Rollout."""

from __future__ import annotations

from typing import Any

import pytest

from controller.api import reasons as r
from controller.api.status import RolloutStatus
from controller.policy.gates import gate_satisfied, parse_image, same_image
from tests.policy.helpers import rollout

DIGEST = "sha256:" + "ab" * 32


def staging(*entries: dict[str, Any]) -> RolloutStatus:
    return RolloutStatus.model_validate({"history": list(entries)})


def entry(image: str, outcome: str = "Promoted", revision: str = "s1") -> dict[str, Any]:
    return {
        "revision": revision,
        "images": {"app": image},
        "outcome": outcome,
        "finishedAt": "2026-12-01T10:00:00Z",
    }


def prod(image: str) -> tuple[Any, dict[str, str]]:
    ro = rollout(namespace="production", image=image, requires="staging/checkout")
    return ro, {c.name: c.image for c in ro.spec.pod_template.spec.containers}


def test_gate_satisfied_by_the_same_tag_promoted_in_staging() -> None:
    ro, images = prod("shop/checkout:1.4.2")
    decision = gate_satisfied(ro, staging(entry("docker.io/shop/checkout:1.4.2")), images)
    assert decision.satisfied and decision.reason == r.GATE_SATISFIED
    assert decision.revision == "s1"
    assert decision.message == (
        "promotion gate: app=shop/checkout:1.4.2 promoted in staging/checkout "
        "(revision s1 at 2026-12-01T10:00:00Z)"
    )


@pytest.mark.parametrize(
    ("history", "needle"),
    [
        ([entry("shop/checkout:1.4.1")], "not yet promoted in staging/checkout"),
        ([entry("shop/checkout:1.4.2", outcome="RolledBack")], "not yet promoted"),
        ([entry("shop/checkout:1.4.2", outcome="Progressing")], "not yet promoted"),
        ([entry("other/checkout:1.4.2")], "not yet promoted"),
    ],
)
def test_gate_unsatisfied(history: list[dict[str, Any]], needle: str) -> None:
    ro, images = prod("shop/checkout:1.4.2")
    decision = gate_satisfied(ro, staging(*history), images)
    assert not decision.satisfied and decision.reason == r.AWAITING_GATE
    assert needle in decision.message


def test_gate_by_digest_even_from_a_mirror() -> None:
    ro, images = prod(f"registry.prod.example/shop/checkout@{DIGEST}")
    satisfied = gate_satisfied(ro, staging(entry(f"shop/checkout:1.4.2@{DIGEST}")), images)
    assert satisfied.satisfied
    other = "sha256:" + "cd" * 32
    assert not gate_satisfied(ro, staging(entry(f"shop/checkout:1.4.2@{other}")), images).satisfied


def test_missing_source_latest_and_self_reference() -> None:
    ro, images = prod("shop/checkout:1.4.2")
    missing = gate_satisfied(ro, None, images)
    assert not missing.satisfied and "Rollout staging/checkout not found" in missing.message
    loose, loose_images = prod("shop/checkout:latest")
    decision = gate_satisfied(loose, staging(entry("shop/checkout:latest")), loose_images)
    assert not decision.satisfied and "no fixed tag or digest" in decision.message
    itself = rollout(namespace="staging", requires="staging/checkout")
    assert "names this Rollout itself" in gate_satisfied(itself, staging(), {}).message
    assert gate_satisfied(rollout(), None, {}).satisfied  # no gate at all


def test_image_references_normalise() -> None:
    assert same_image(parse_image("nginx:1.25"), parse_image("docker.io/library/nginx:1.25"))
    assert same_image(parse_image("index.docker.io/library/nginx:1.25"), parse_image("nginx:1.25"))
    assert not same_image(parse_image("nginx:1.25"), parse_image("nginx:1.26"))
    assert parse_image("localhost:5000/app:1").repository == "localhost:5000/app"
