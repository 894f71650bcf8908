"""Semantic versions of image tags: what counts as a downgrade, and what is not compared."""

from __future__ import annotations

import pytest

from controller.versions import (
    downgrades,
    image_tag,
    image_version,
    is_major_change,
    version_label,
)


@pytest.mark.parametrize(
    ("image", "tag"),
    [
        ("shop/checkout:1.4.2", "1.4.2"),
        ("registry:5000/team/app:v2.0.0", "v2.0.0"),
        ("registry:5000/team/app", None),
        ("app:1.0.0@sha256:abc", "1.0.0"),
        ("app@sha256:abc", None),
    ],
)
def test_image_tag_ignores_registry_ports_and_digests(image: str, tag: str | None) -> None:
    assert image_tag(image) == tag


@pytest.mark.parametrize("image", ["app:latest", "app:3f2c1a9", "app:2026-11-24", "app"])
def test_tags_that_are_not_semantic_versions_have_no_version(image: str) -> None:
    assert image_version(image) is None


def test_downgrade_is_found_with_or_without_a_leading_v_and_prereleases_rank_lower() -> None:
    found = downgrades({"app": "shop:v1.4.2"}, {"app": "shop:1.3.9"})
    assert [d.describe() for d in found] == ["container 'app': 1.4.2 -> 1.3.9"]
    assert downgrades({"app": "shop:1.5.0"}, {"app": "shop:1.5.0-rc.1"})
    assert not downgrades({"app": "shop:1.4.2"}, {"app": "shop:1.4.3"})
    assert not downgrades({"app": "shop:latest"}, {"app": "shop:0.1.0"})  # no opinion


def test_major_change_and_history_label() -> None:
    assert is_major_change({"app": "a:1.9.0"}, {"app": "a:2.0.0"})
    assert not is_major_change({"app": "a:1.9.0"}, {"app": "a:1.10.0"})
    assert version_label({"app": "a:v1.2.3"}) == "1.2.3"
    assert version_label({"app": "a:1.2.3", "side": "b:0.1.0"}) == "app=1.2.3,side=0.1.0"
