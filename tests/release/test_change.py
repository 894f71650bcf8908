"""The new pod template of a member: merge by name, images, nothing else changed."""

from __future__ import annotations

import copy

import pytest

from controller.release.change import ChangeError, apply_change, merge

BASE = {
    "metadata": {"labels": {"app": "shop"}, "annotations": {"team": "a"}},
    "spec": {
        "nodeSelector": {"region": "eu-1"},
        "containers": [
            {"name": "app", "image": "shop:1", "env": [{"name": "A", "value": "1"}]},
            {"name": "proxy", "image": "envoy:1"},
        ],
    },
}


def test_images_change_only_the_named_containers() -> None:
    new = apply_change(BASE, images={"app": "shop:2"}, patch={})
    assert [c["image"] for c in new["spec"]["containers"]] == ["shop:2", "envoy:1"]
    assert new["spec"]["nodeSelector"] == {"region": "eu-1"}  # the member's own settings stay


def test_the_input_is_never_modified() -> None:
    before = copy.deepcopy(BASE)
    apply_change(BASE, images={"app": "shop:2"}, patch={"spec": {"nodeSelector": {"x": "y"}}})
    apply_change(BASE, images={"proxy": "envoy:2"}, patch={"metadata": {"labels": {"v": "2"}}})
    assert BASE == before


def test_named_lists_merge_entry_by_entry() -> None:
    patch = {
        "spec": {
            "containers": [
                {"name": "app", "env": [{"name": "A", "value": "9"}, {"name": "B", "value": "2"}]},
                {"name": "logger", "image": "fluent:1"},
            ]
        }
    }
    new = apply_change(BASE, images={}, patch=patch)
    app, proxy, logger = new["spec"]["containers"]
    assert app["image"] == "shop:1"
    assert app["env"] == [{"name": "A", "value": "9"}, {"name": "B", "value": "2"}]
    assert proxy == {"name": "proxy", "image": "envoy:1"}
    assert logger == {"name": "logger", "image": "fluent:1"}


def test_null_removes_a_key_and_other_lists_are_replaced() -> None:
    assert merge({"a": 1, "b": 2}, {"a": None}) == {"b": 2}
    assert merge({"tolerations": [1, 2]}, {"tolerations": [3]}) == {"tolerations": [3]}
    assert merge({"x": {"y": 1}}, {"x": {"z": 2}}) == {"x": {"y": 1, "z": 2}}


def test_the_patch_comes_before_the_images() -> None:
    patch = {"spec": {"containers": [{"name": "app", "image": "from-patch:1"}]}}
    new = apply_change(BASE, images={"app": "from-images:2"}, patch=patch)
    assert new["spec"]["containers"][0]["image"] == "from-images:2"


def test_an_unknown_container_is_an_error_naming_the_real_ones() -> None:
    with pytest.raises(ChangeError, match="no container named web.*containers: app, proxy"):
        apply_change(BASE, images={"web": "x:1"}, patch={})


def test_a_named_entry_without_a_name_is_an_error() -> None:
    with pytest.raises(ChangeError, match="every entry of env needs a name"):
        apply_change(
            BASE,
            images={},
            patch={"spec": {"containers": [{"name": "app", "env": [{"value": "1"}]}]}},
        )
