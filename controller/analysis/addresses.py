"""The web address policy: which addresses an HTTP check may connect to, and why not.

Pure: ``controller.analysis.web`` resolves a check's host and asks ``AddressPolicy.refusals``
about the name and every address it resolved to, then connects only to an address that
was checked (so a DNS answer that changes between the check and the connection cannot
point it elsewhere). Anyone who may write an AnalysisTemplate chooses where the
controller sends a request, so by default these are refused, each by a named rule:

================  ==========================================================================
rule              refused
================  ==========================================================================
unspecified       0.0.0.0/8, ``::`` (the kernel connects them to this host)
loopback          127.0.0.0/8, ``::1``, ``localhost`` (the controller's own pod)
link-local        169.254.0.0/16, fe80::/10 (cloud instance metadata with the node's
                  credentials, 169.254.169.254, lives here)
metadata          the cloud metadata names (``metadata.google.internal``...) and the
                  metadata addresses outside link-local (fd00:ec2::254, 100.100.100.200)
apiserver         the Kubernetes API server's addresses and names (``kubernetes.default``...)
denied            what the operator adds with ``--web-deny-cidrs`` (e.g. the node network)
other-namespace   a Service or pod of another namespace, by name (``svc.ns.svc``) or by its
                  address, unless the namespace is in ``--web-allow-namespaces``
================  ==========================================================================

``--web-allow-cidrs`` lifts address rules by *longest prefix*, as a routing table would:
an allowed network lifts a refused one that it is at least as specific as. So
``127.0.0.0/8`` (the sandbox, where pods live on loopback addresses) allows pods but not
an API server on ``127.0.0.1`` (refused as a /32); ``127.0.0.1/32`` allows that too. A
refused name is lifted when every address it resolves to is allowed that way. IPv4
addresses written as IPv6 (``::ffff:169.254.169.254``) are judged as IPv4.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOW_FLAG = "--web-allow-cidrs"
NAMESPACES_FLAG = "--web-allow-namespaces"

_RANGES: tuple[tuple[str, str, str], ...] = (
    ("unspecified", "0.0.0.0/8", "this host"),
    ("unspecified", "::/128", "this host"),
    ("loopback", "127.0.0.0/8", "the controller's own pod"),
    ("loopback", "::1/128", "the controller's own pod"),
    ("link-local", "169.254.0.0/16", "cloud instance metadata and the node's credentials"),
    ("link-local", "fe80::/10", "cloud instance metadata and the node's credentials"),
    ("metadata", "fd00:ec2::254/128", "cloud instance metadata"),
    ("metadata", "100.100.100.200/32", "cloud instance metadata"),
)
_RULES = tuple((rule, ipaddress.ip_network(cidr), why) for rule, cidr, why in _RANGES)

METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.internal",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
APISERVER_NAMES = frozenset({"kubernetes", "kubernetes.default", "kubernetes.default.svc"})


def parse_networks(values: Iterable[str], *, flag: str) -> tuple[IPNetwork, ...]:
    """CIDRs (or single addresses) from a flag; ValueError naming the flag and the value."""
    out: list[IPNetwork] = []
    for raw in values:
        for item in (part.strip() for part in raw.split(",")):
            if not item:
                continue
            try:
                out.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(
                    f"{flag}: {item!r} is not a CIDR such as 10.0.0.0/8 or an address"
                ) from None
    return tuple(out)


def normalise(address: IPAddress) -> IPAddress:
    """IPv4-mapped IPv6 (``::ffff:a.b.c.d``) as the IPv4 address it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def cluster_service(host: str) -> tuple[str, str] | None:
    """(service, namespace) for ``svc.ns.svc`` and ``svc.ns.svc.<cluster domain>``."""
    labels = host.rstrip(".").lower().split(".")
    if len(labels) >= 3 and labels[2] == "svc" and labels[0] and labels[1]:
        return labels[0], labels[1]
    return None


@dataclass(frozen=True)
class Refusal:
    """One rule refusing one address (or name); ``prefix`` is how specific the rule is."""

    rule: str
    subject: str
    detail: str
    prefix: int = 128
    liftable: bool = True

    def sentence(self) -> str:
        return f"{self.subject} is refused by rule {self.rule} ({self.detail})"


@dataclass(frozen=True)
class AddressPolicy:
    """The operator's configuration (flags) of what web checks may reach."""

    allow: tuple[IPNetwork, ...] = ()
    deny: tuple[IPNetwork, ...] = ()
    allow_namespaces: frozenset[str] = frozenset()
    """Namespaces (besides the Rollout's own) whose Services checks may reach; ``*``: any."""
    apiserver: frozenset[IPAddress] = field(default_factory=frozenset)
    """The API server's addresses known at start (its URL, KUBERNETES_SERVICE_HOST)."""

    def namespace_allowed(self, namespace: str, *, own: str) -> bool:
        allowed = self.allow_namespaces
        return namespace == own or "*" in allowed or namespace in allowed

    def name_refusals(self, host: str, *, own_namespace: str) -> list[Refusal]:
        """What the host *name* alone says: metadata, localhost, the API server, a
        Service of another namespace. An IP literal has no name rules."""
        name = host.rstrip(".").lower()
        refusals = []
        if name in METADATA_NAMES:
            refusals.append(Refusal("metadata", name, "a cloud instance metadata name"))
        if name == "localhost" or name.endswith(".localhost"):
            refusals.append(Refusal("loopback", name, "the controller's own pod"))
        service = cluster_service(name)
        if name in APISERVER_NAMES or service == ("kubernetes", "default"):
            refusals.append(Refusal("apiserver", name, "the Kubernetes API server"))
        elif service is not None and not self.namespace_allowed(service[1], own=own_namespace):
            refusals.append(
                Refusal(
                    "other-namespace",
                    name,
                    f"a Service of namespace {service[1]}, not the Rollout's {own_namespace}; "
                    f"an operator may allow it with {NAMESPACES_FLAG}",
                    liftable=False,
                )
            )
        return refusals

    def address_refusals(
        self,
        address: IPAddress,
        *,
        own_namespace: str,
        owners: Mapping[IPAddress, tuple[str, str]] | None = None,
        apiserver: Iterable[IPAddress] = (),
    ) -> list[Refusal]:
        """Every rule refusing ``address`` that ``--web-allow-cidrs`` does not lift.

        ``owners`` maps addresses of Services and pods the controller knows to
        (kind/name, namespace); ``apiserver`` adds addresses learnt since start (the
        ``kubernetes`` Service's cluster IP).
        """
        address = normalise(address)
        shown = str(address)
        found: list[Refusal] = []
        for rule, network, why in _RULES:
            if address.version == network.version and address in network:
                found.append(Refusal(rule, shown, f"{network}: {why}", network.prefixlen))
        for network in self.deny:
            if address.version == network.version and address in network:
                found.append(
                    Refusal("denied", shown, f"{network}: --web-deny-cidrs", network.prefixlen)
                )
        if address in self.apiserver or address in {normalise(a) for a in apiserver}:
            found.append(
                Refusal("apiserver", shown, "the Kubernetes API server", address.max_prefixlen)
            )
        owner = (owners or {}).get(address)
        if owner is not None and not self.namespace_allowed(owner[1], own=own_namespace):
            found.append(
                Refusal(
                    "other-namespace",
                    shown,
                    f"{owner[0]} in namespace {owner[1]}, not the Rollout's {own_namespace}; "
                    f"an operator may allow it with {NAMESPACES_FLAG}",
                    liftable=False,
                )
            )
        return [r for r in found if not self.lifted(address, r)]

    def lifted(self, address: IPAddress, refusal: Refusal) -> bool:
        """Whether an allowed network at least as specific as the rule contains it."""
        return refusal.liftable and any(
            address.version == network.version
            and address in network
            and network.prefixlen >= refusal.prefix
            for network in self.allow
        )

    def name_lifted(self, refusal: Refusal, addresses: Iterable[IPAddress]) -> bool:
        """A refused name names one host, so it is lifted like a /32 (or /128): when
        every address it resolved to is in an allowed network of that length."""
        resolved = [normalise(a) for a in addresses]
        return (
            refusal.liftable
            and bool(resolved)
            and all(
                any(
                    a.version == n.version and a in n and n.prefixlen == a.max_prefixlen
                    for n in self.allow
                )
                for a in resolved
            )
        )


def describe(host: str, refusals: list[Refusal]) -> str:
    """The message a user sees: every rule that refused, and how an operator allows it."""
    rules = "; ".join(dict.fromkeys(r.sentence() for r in refusals))
    liftable = [r for r in refusals if r.liftable]
    hint = (
        f"; an operator may allow it with {ALLOW_FLAG} (docs/security.md#web-address-policy)"
        if liftable
        else ""
    )
    return f"web address policy: {host}: {rules}{hint}"
