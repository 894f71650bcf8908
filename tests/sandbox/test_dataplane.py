"""The sandbox data path's routing rules, read from route objects as a proxy would.

Pure: each test hands ``sandbox/dataplane.py`` an object in the shape the apiserver
returns and checks which rule a request matches, its weighted backends and its mirror.
The cluster side (the same objects written by the controller, read back through the
apiserver) is covered by tests/integration/test_routers.py. Also checks that the Istio
CRDs shipped for the sandbox are the published documents, byte for byte.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import yaml

from sandbox.dataplane import (
    BackendRef,
    RequestClass,
    Rule,
    first_match,
    httproute_rules,
    ingress_rules,
    virtualservice_rules,
)
from sandbox.traffic import ISTIO_CRD_DIR, ISTIO_CRDS

PLAIN = RequestClass("plain")
BETA = RequestClass("beta", headers={"x-beta": "yes"})
POST = RequestClass("post", method="POST", path="/orders")


def matched(rules: list[Rule], request: RequestClass) -> Rule:
    rule = first_match(rules, request)
    assert rule is not None, f"no rule matches {request}"
    return rule


def targets(rule: Rule) -> list[tuple[str, int]]:
    return [(ref.key, weight) for ref, weight in rule.targets]


def httproute(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"rules": list(rules)}}


WEIGHTED = {
    "backendRefs": [
        {"name": "stable", "port": 8080, "weight": 90},
        {"name": "canary", "port": 8080, "weight": 10},
    ]
}


def test_httproute_header_rule_outranks_the_catch_all_whatever_the_order() -> None:
    header_rule = {
        "matches": [{"headers": [{"name": "X-Beta", "value": "yes"}]}],
        "backendRefs": [{"name": "canary", "port": 8080}],
    }
    rules = httproute_rules(httproute(WEIGHTED, header_rule), namespace="ns")
    assert targets(matched(rules, BETA)) == [("canary", 1)]
    assert targets(matched(rules, PLAIN)) == [("stable", 90), ("canary", 10)]
    # A different value does not match: Exact is the default header match type.
    other = RequestClass("other", headers={"X-Beta": "no"})
    assert targets(matched(rules, other)) == [("stable", 90), ("canary", 10)]


def test_httproute_ranks_exact_path_then_longest_prefix_then_method() -> None:
    def rule(name: str, match: dict[str, Any]) -> dict[str, Any]:
        return {"matches": [match], "backendRefs": [{"name": name}]}

    rules = httproute_rules(
        httproute(
            rule("root", {"path": {"type": "PathPrefix", "value": "/"}}),
            rule("posts", {"method": "POST"}),
            rule("orders", {"path": {"type": "PathPrefix", "value": "/orders"}}),
            rule("exact", {"path": {"type": "Exact", "value": "/orders"}}),
        ),
        namespace="ns",
    )
    assert matched(rules, POST).targets[0][0].service == "exact"
    assert matched(rules, PLAIN).targets[0][0].service == "root"
    assert (
        matched(rules, RequestClass("p", method="POST", path="/x")).targets[0][0].service == "posts"
    )


def test_httproute_mirror_percent_and_fraction_and_foreign_refs_skipped() -> None:
    mirror_percent = {
        **WEIGHTED,
        "filters": [
            {
                "type": "RequestMirror",
                "requestMirror": {"backendRef": {"name": "canary"}, "percent": 40},
            }
        ],
    }
    (rule,) = httproute_rules(httproute(mirror_percent), namespace="ns")
    assert rule.mirror == (BackendRef("canary"), 40.0)
    fraction = {
        "backendRefs": [
            {"name": "stable"},
            {"name": "elsewhere", "namespace": "other"},
            {"name": "bucket", "group": "example.com", "kind": "Bucket"},
        ],
        "filters": [
            {
                "type": "RequestMirror",
                "requestMirror": {
                    "backendRef": {"name": "canary"},
                    "fraction": {"numerator": 1, "denominator": 4},
                },
            }
        ],
    }
    (rule,) = httproute_rules(httproute(fraction), namespace="ns")
    assert rule.mirror == (BackendRef("canary"), 25.0)
    assert targets(rule) == [("stable", 1)]


def virtual_service(*http: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"hosts": ["shop"], "http": list(http)}}


def test_virtualservice_first_matching_route_wins_in_order() -> None:
    header = {
        "name": "beta",
        "match": [{"headers": {"x-beta": {"exact": "yes"}}}],
        "route": [{"destination": {"host": "shop-canary"}}],
    }
    primary = {
        "name": "primary",
        "route": [
            {"destination": {"host": "shop-stable.ns.svc.cluster.local"}, "weight": 80},
            {"destination": {"host": "shop-canary.ns"}, "weight": 20},
        ],
    }
    rules = virtualservice_rules(virtual_service(header, primary), namespace="ns")
    assert [r.key for r in rules] == ["vs/beta", "vs/primary"]
    # A lone destination takes all; short and namespace-qualified hosts are local Services.
    assert targets(matched(rules, BETA)) == [("shop-canary", 100)]
    assert targets(matched(rules, PLAIN)) == [("shop-stable", 80), ("shop-canary", 20)]
    # Order is Istio's: the catch-all first would take the header's requests too.
    rules = virtualservice_rules(virtual_service(primary, header), namespace="ns")
    assert matched(rules, BETA).key == "vs/primary"


def test_virtualservice_subsets_narrow_by_destination_rule_labels_and_mirror() -> None:
    destination_rule = {
        "spec": {
            "host": "shop",
            "subsets": [
                {"name": "stable", "labels": {"rev": "r1"}},
                {"name": "canary", "labels": {"rev": "r2"}},
            ],
        }
    }
    route = {
        "match": [{"method": {"exact": "GET"}, "uri": {"prefix": "/"}}],
        "route": [
            {"destination": {"host": "shop", "subset": "stable"}, "weight": 75},
            {"destination": {"host": "shop", "subset": "canary"}, "weight": 25},
        ],
        "mirror": {"host": "shop", "subset": "canary"},
        "mirrorPercentage": {"value": 50.0},
    }
    (rule,) = virtualservice_rules(
        virtual_service(route), namespace="ns", destination_rules=[destination_rule]
    )
    assert targets(rule) == [("shop[rev=r1]", 75), ("shop[rev=r2]", 25)]
    assert rule.mirror == (BackendRef("shop", (("rev", "r2"),)), 50.0)
    assert rule.matches(PLAIN) and not rule.matches(POST)
    # A regex matches the whole value, as Envoy does.
    regex = {"match": [{"headers": {"x-beta": {"regex": "y"}}}], "route": route["route"]}
    (rule,) = virtualservice_rules(virtual_service(regex), namespace="ns")
    assert not rule.matches(BETA)


def ingress(name: str, service: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    backend = {"service": {"name": service, "port": {"number": 8080}}}
    return {
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {"rules": [{"host": "shop.example", "http": {"paths": [{"backend": backend}]}}]},
    }


PREFIX = "nginx.ingress.kubernetes.io"


def test_nginx_canary_ingress_header_first_then_weight() -> None:
    stable = ingress("shop", "shop-stable")
    canary = ingress(
        "shop-canary",
        "shop-canary",
        {
            f"{PREFIX}/canary": "true",
            f"{PREFIX}/canary-weight": "30",
            f"{PREFIX}/canary-by-header": "X-Beta",
            f"{PREFIX}/canary-by-header-value": "yes",
        },
    )
    rules = ingress_rules(stable, [stable, canary])
    assert [r.key for r in rules] == ["ingress/shop/header", "ingress/shop"]
    assert targets(matched(rules, BETA)) == [("shop-canary", 1)]
    assert targets(matched(rules, PLAIN)) == [("shop-stable", 70), ("shop-canary", 30)]


@pytest.mark.parametrize(
    ("extra", "header_value", "matches"),
    [
        ({}, "always", True),
        ({}, "yes", False),
        ({f"{PREFIX}/canary-by-header-pattern": "^be"}, "beta-1", True),
        ({f"{PREFIX}/canary-by-header-pattern": "^be"}, "alpha", False),
    ],
)
def test_nginx_header_without_value_means_always_and_pattern_searches(
    extra: dict[str, str], header_value: str, matches: bool
) -> None:
    stable = ingress("shop", "shop-stable")
    canary = ingress(
        "c",
        "shop-canary",
        {f"{PREFIX}/canary": "true", f"{PREFIX}/canary-by-header": "X-C", **extra},
    )
    rules = ingress_rules(stable, [stable, canary])
    request = RequestClass("r", headers={"X-C": header_value})
    assert (matched(rules, request).key == "ingress/shop/header") is matches


def test_nginx_without_a_canary_or_with_a_bad_weight() -> None:
    stable = ingress("shop", "shop-stable")
    assert targets(ingress_rules(stable, [stable])[0]) == [("shop-stable", 1)]
    # A canary Ingress for another host is not this one's canary.
    elsewhere = ingress("c", "shop-canary", {f"{PREFIX}/canary": "true"})
    elsewhere["spec"]["rules"][0]["host"] = "other.example"
    assert targets(ingress_rules(stable, [stable, elsewhere])[0]) == [("shop-stable", 1)]
    bad = ingress("c", "shop-canary", {f"{PREFIX}/canary": "true", f"{PREFIX}/canary-weight": "x"})
    assert targets(ingress_rules(stable, [stable, bad])[0]) == [
        ("shop-stable", 100),
        ("shop-canary", 0),
    ]


def test_istio_crds_are_the_published_documents() -> None:
    sums = {}
    for line in (ISTIO_CRD_DIR / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        sums[name] = digest
    assert sorted(path.name for path in ISTIO_CRDS) == sorted(sums)
    kinds = set()
    for path in ISTIO_CRDS:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sums[path.name], path.name
        document = yaml.safe_load(path.read_text())
        assert document["spec"]["group"] == "networking.istio.io"
        kinds.add(document["spec"]["names"]["kind"])
        served = {v["name"] for v in document["spec"]["versions"] if v["served"]}
        assert "v1" in served
    assert kinds == {"VirtualService", "DestinationRule"}
