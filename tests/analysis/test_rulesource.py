"""Alert rules files read from ConfigMaps of the sandbox's kube-apiserver."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from controller.analysis.alertrules import RulesError, load_rules
from controller.analysis.rulesource import ConfigMapData, ConfigMapRules
from controller.kube import Kube
from tests.analysis.test_alertrules import SEED_RULES


@pytest.fixture
def kube(control_plane: Any) -> Iterator[Kube]:
    adapter = Kube(control_plane.api_client())
    yield adapter
    adapter.close()


def reader(kube: Kube) -> Any:
    return lambda ns, name: ConfigMapData(*kube.read_configmap_version(ns, name))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_rules_come_from_the_configmap_and_are_re_read_after_the_ttl(
    kube, kube_api, namespace
) -> None:
    core: Any = k8s.CoreV1Api(kube_api)
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "alerts"}, "data": {"rules.yaml": SEED_RULES}}
    )
    clock = Clock()
    source = ConfigMapRules(reader(kube), ttl=15, clock=clock)
    names = [r.name for r in source.rules(namespace, "alerts", None)]
    assert names == ["HighErrorRate", "SlowResponses"]  # recording rules are not gates

    trimmed = SEED_RULES.split("      - alert: SlowResponses")[0]
    core.patch_namespaced_config_map("alerts", namespace, {"data": {"rules.yaml": trimmed}})
    clock.now = 10  # within the TTL: the cached file
    assert len(source.rules(namespace, "alerts", "rules.yaml")) == 2
    clock.now = 16  # past it: read again
    assert [r.name for r in source.rules(namespace, "alerts", "rules.yaml")] == ["HighErrorRate"]


def test_a_configmap_that_cannot_serve_is_a_clear_error(kube, kube_api, namespace) -> None:
    core: Any = k8s.CoreV1Api(kube_api)
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "two"}, "data": {"a.yaml": "x", "b.yaml": "y"}}
    )
    source = ConfigMapRules(reader(kube))
    with pytest.raises(RulesError, match=f"no ConfigMap {namespace}/missing"):
        source.rules(namespace, "missing", None)
    with pytest.raises(RulesError, match=r"has 2 keys \(a.yaml, b.yaml\); name the rules file"):
        source.rules(namespace, "two", None)
    with pytest.raises(RulesError, match="has no key 'c.yaml'"):
        source.rules(namespace, "two", "c.yaml")
    with pytest.raises(RulesError, match="top-level 'groups' list"):
        source.rules(namespace, "two", "a.yaml")


def test_a_file_is_parsed_once_per_resource_version_errors_included() -> None:
    versions = {"v": "1"}
    texts = {"1": SEED_RULES, "2": "a: &a [1]\nb: *a\n"}
    parsed: list[str] = []

    def read(namespace: str, name: str) -> ConfigMapData:
        version = versions["v"]
        return ConfigMapData(version, {"rules.yaml": texts[version]})

    def parse(text: str, *, source: str) -> Any:
        parsed.append(source)
        return load_rules(text, source=source)

    clock = Clock()
    source = ConfigMapRules(read, ttl=0, clock=clock, parse=parse)
    for _ in range(3):
        assert len(source.rules("shop", "alerts", None)) == 2
    assert len(parsed) == 1  # re-read three times (ttl 0), parsed once
    versions["v"] = "2"
    for _ in range(3):
        with pytest.raises(RulesError, match="limit yamlAliases"):
            source.rules("shop", "alerts", None)
    assert len(parsed) == 2  # the refused version is remembered too
