"""The web address policy, table-driven: every rule, by name and by address, and how
the operator's flags lift them (longest prefix wins)."""

from __future__ import annotations

import ipaddress

import pytest

from controller.analysis.addresses import AddressPolicy, describe, parse_networks

NS = "shop"


def policy(
    allow: str = "", deny: str = "", namespaces: str = "", apiserver: str = ""
) -> AddressPolicy:
    return AddressPolicy(
        allow=parse_networks([allow], flag="--web-allow-cidrs"),
        deny=parse_networks([deny], flag="--web-deny-cidrs"),
        allow_namespaces=frozenset(n for n in namespaces.split(",") if n),
        apiserver=frozenset(ipaddress.ip_address(a) for a in apiserver.split(",") if a),
    )


def rules_for(
    p: AddressPolicy, address: str, owners: dict[str, tuple[str, str]] | None = None
) -> list[str]:
    found = p.address_refusals(
        ipaddress.ip_address(address),
        own_namespace=NS,
        owners={ipaddress.ip_address(k): v for k, v in (owners or {}).items()},
    )
    return sorted({r.rule for r in found})


@pytest.mark.parametrize(
    ("address", "rules"),
    [
        ("169.254.169.254", ["link-local"]),
        ("::ffff:169.254.169.254", ["link-local"]),  # IPv4 written as IPv6
        ("169.254.170.2", ["link-local"]),
        ("fe80::1", ["link-local"]),
        ("fd00:ec2::254", ["metadata"]),
        ("100.100.100.200", ["metadata"]),
        ("127.0.0.1", ["loopback"]),
        ("127.1.2.3", ["loopback"]),
        ("::1", ["loopback"]),
        ("0.0.0.0", ["unspecified"]),
        ("::", ["unspecified"]),
        ("10.1.2.3", []),
        ("93.184.216.34", []),
    ],
)
def test_default_rules_by_address(address: str, rules: list[str]) -> None:
    assert rules_for(policy(), address) == rules


def test_the_api_server_and_denied_networks_are_refused() -> None:
    p = policy(deny="10.250.0.0/16", apiserver="10.0.0.1,192.168.5.5")
    assert rules_for(p, "10.0.0.1") == ["apiserver"]
    assert rules_for(p, "192.168.5.5") == ["apiserver"]
    assert rules_for(p, "10.250.3.4") == ["denied"]
    assert rules_for(p, "10.251.3.4") == []


def test_an_allowed_network_lifts_only_rules_it_is_at_least_as_specific_as() -> None:
    # The sandbox: pods on 127.x.y.z, the API server on 127.0.0.1.
    sandbox = policy(allow="127.0.0.0/8", apiserver="127.0.0.1")
    assert rules_for(sandbox, "127.1.0.9") == []
    assert rules_for(sandbox, "127.0.0.1") == ["apiserver"]
    assert rules_for(policy(allow="127.0.0.1/32", apiserver="127.0.0.1"), "127.0.0.1") == []
    # A broad allowance does not lift a narrower refusal inside it.
    assert rules_for(policy(allow="0.0.0.0/0"), "169.254.169.254") == ["link-local"]
    assert rules_for(policy(allow="169.254.169.254/32"), "169.254.169.254") == []
    assert rules_for(policy(allow="169.254.0.0/16"), "169.254.169.254") == []
    assert rules_for(
        policy(allow="169.254.0.0/16", deny="169.254.169.254/32"), "169.254.169.254"
    ) == ["denied"]


def test_services_and_pods_of_other_namespaces_are_refused_unless_allowed() -> None:
    owners = {"10.0.0.40": ("Service api", "payments"), "10.0.0.41": ("Service web", NS)}
    assert rules_for(policy(), "10.0.0.40", owners) == ["other-namespace"]
    assert rules_for(policy(), "10.0.0.41", owners) == []
    assert rules_for(policy(namespaces="payments"), "10.0.0.40", owners) == []
    assert rules_for(policy(namespaces="*"), "10.0.0.40", owners) == []
    # No CIDR lifts it: which namespaces may be reached is a namespace decision.
    assert rules_for(policy(allow="10.0.0.40/32"), "10.0.0.40", owners) == ["other-namespace"]


@pytest.mark.parametrize(
    ("host", "rules"),
    [
        ("metadata.google.internal", ["metadata"]),
        ("METADATA.google.internal.", ["metadata"]),
        ("instance-data.ec2.internal", ["metadata"]),
        ("localhost", ["loopback"]),
        ("app.localhost", ["loopback"]),
        ("kubernetes.default", ["apiserver"]),
        ("kubernetes.default.svc", ["apiserver"]),
        ("kubernetes.default.svc.cluster.local", ["apiserver"]),
        ("api.payments.svc", ["other-namespace"]),
        ("api.payments.svc.cluster.local", ["other-namespace"]),
        ("web.shop.svc.cluster.local", []),
        ("example.com", []),
    ],
)
def test_rules_by_name(host: str, rules: list[str]) -> None:
    assert sorted(r.rule for r in policy().name_refusals(host, own_namespace=NS)) == rules


def test_a_refused_name_is_lifted_only_host_by_host() -> None:
    (refusal,) = policy().name_refusals("localhost", own_namespace=NS)
    loopback = [ipaddress.ip_address("127.0.0.1")]
    assert not policy(allow="127.0.0.0/8").name_lifted(refusal, loopback)
    assert policy(allow="127.0.0.1/32").name_lifted(refusal, loopback)
    (other,) = policy().name_refusals("api.payments.svc", own_namespace=NS)
    assert not policy(allow="0.0.0.0/0").name_lifted(other, loopback)


def test_the_message_names_every_rule_and_says_how_to_allow_it() -> None:
    p = policy(apiserver="127.0.0.1")
    refusals = p.address_refusals(ipaddress.ip_address("127.0.0.1"), own_namespace=NS)
    message = describe("127.0.0.1", refusals)
    assert "rule loopback (127.0.0.0/8" in message and "rule apiserver" in message
    assert "--web-allow-cidrs" in message and "docs/security.md" in message


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "nonsense", "1.2.3.4/8/9"])
def test_bad_flags_are_named(bad: str) -> None:
    with pytest.raises(ValueError, match=f"--web-allow-cidrs: '{bad}' is not a CIDR"):
        parse_networks([bad], flag="--web-allow-cidrs")
