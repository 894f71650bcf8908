"""The Kubernetes permissions the operator needs: one list, and why each is there.

This is the single source of the operator's RBAC. ``manifests/`` spells it out as YAML
(the ClusterRole, the namespaced install's Role, the leader-election Role) and
``docs/install.md`` as a table; ``tests/manifests/`` checks both ways that

- every API call the operator's code makes (derived from ``controller/kube/`` and the
  modules ``controller.operator`` imports) is in this list, and nothing else is;
- the manifests grant exactly this list, without wildcards and without secrets (the
  admission-policy reads by ``resourceNames``);
- the table in ``docs/install.md`` is the one ``python -m controller.rbac`` prints.

The CLI (``deployctl rollout``, ``promote``...) is not covered: it runs with the
credentials of the person or CI job using it, not with the operator's ServiceAccount.

The release controller (``deployctl release-controller``) has two lists of its own,
checked the same way: ``RELEASE_PERMISSIONS`` in the management cluster (a Role in the
namespace of its Releases: manifests/release-controller/) and ``MEMBER_PERMISSIONS``,
all it may do in each member cluster (a ClusterRole bound by a RoleBinding in the
application's namespace only: manifests/member/). The member side reads and patches the
one Rollout and lists its ReplicaSets; it never creates anything there.

Secrets: only ``get``, only in the operator's own namespace. DeliveryPolicy webhook URLs
are credentials (a Slack webhook URL is its own token), kept in Secrets that the
platform team creates next to the operator. The cluster-wide install cannot use
``resourceNames`` (the names come from policies); the namespaced install narrows it to
the one Secret ``deployctl-webhooks`` (its kustomization patches the Role). Nothing
here grants a Secret in an application's namespace: a web check whose header comes
from a Secret, or an AnalysisTemplate arg with ``valueFrom.secretKeyRef``, works only
once that team grants ``get`` on that one Secret (a Role with ``resourceNames`` in its
namespace; docs/analysis.md).

Namespaces: list and watch, cluster-wide install only (``CLUSTER``): a policy's
``namespaceSelector`` matches the labels of the Namespace object.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass
from enum import StrEnum


class Scope(StrEnum):
    """Where a permission must hold."""

    WATCHED = "watched"
    """Every namespace the operator watches: a ClusterRole, or a Role when namespaced."""
    OWN = "own"
    """Only the operator's own namespace (the leader Lease): always a Role."""
    MEMBER = "member"
    """In a member cluster, the application's namespace (the release controller)."""
    CLUSTER = "cluster"
    """Cluster-scoped objects, cluster-wide install only: in the ClusterRole."""
    ADMISSION = "admission"
    """Cluster-scoped objects of deployctl's admission policy, by name: a ClusterRole
    shipped with the policy itself (``manifests/admission/``), in either install."""


@dataclass(frozen=True)
class Permission:
    group: str  # "" is the core API group
    resource: str  # plural, with "/subresource" where one is used
    verb: str
    scope: Scope
    why: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.group, self.resource, self.verb)


_DEPLOYCTL = "deployctl.io"
_GATEWAY = "gateway.networking.k8s.io"
_ISTIO = "networking.istio.io"
_NETWORKING = "networking.k8s.io"
W, OWN, CLUSTER = Scope.WATCHED, Scope.OWN, Scope.CLUSTER

PERMISSIONS: tuple[Permission, ...] = (
    Permission(_DEPLOYCTL, "rollouts", "list", W, "informer: the initial list of Rollouts"),
    Permission(_DEPLOYCTL, "rollouts", "watch", W, "informer: every change to a Rollout"),
    Permission(_DEPLOYCTL, "rollouts/status", "patch", W, "status is the controller's only memory"),
    Permission(
        _DEPLOYCTL,
        "rollouts/finalizers",
        "update",
        W,
        "ReplicaSets carry blockOwnerDeletion ownerReferences to their Rollout",
    ),
    Permission(_DEPLOYCTL, "analysistemplates", "list", W, "informer: the analysis templates"),
    Permission(_DEPLOYCTL, "analysistemplates", "watch", W, "informer: template changes"),
    Permission(_DEPLOYCTL, "deliverypolicies", "list", W, "informer: freezes, windows, approvals"),
    Permission(_DEPLOYCTL, "deliverypolicies", "watch", W, "informer: policy changes"),
    Permission("apps", "replicasets", "list", W, "informer: the ReplicaSets of each revision"),
    Permission("apps", "replicasets", "watch", W, "informer: readiness of each revision"),
    Permission("apps", "replicasets", "create", W, "one ReplicaSet per revision"),
    Permission("apps", "replicasets", "patch", W, "scale revisions up and down"),
    Permission("apps", "replicasets", "delete", W, "remove old revisions past the history"),
    Permission("apps", "deployments", "list", W, "informer: a Rollout's workloadRef template"),
    Permission("apps", "deployments", "watch", W, "informer: a workloadRef template change"),
    Permission(
        "apps",
        "deployments/scale",
        "patch",
        W,
        "workloadRef take-over (scale to 0) and hand-back (scale back up)",
    ),
    Permission("apps", "statefulsets", "list", W, "informer: a workloadRef StatefulSet"),
    Permission("apps", "statefulsets", "watch", W, "informer: its template and pods moving"),
    Permission("apps", "statefulsets", "patch", W, "partition per step; stable template back"),
    Permission("apps", "statefulsets", "get", W, "a refused template write: whose spec won"),
    Permission("apps", "controllerrevisions", "get", W, "the stable template back, for rollback"),
    Permission("apps", "daemonsets", "list", W, "informer: a workloadRef DaemonSet"),
    Permission("apps", "daemonsets", "watch", W, "informer: its template and pods moving"),
    Permission("apps", "daemonsets", "patch", W, "OnDelete while owned; stable template back"),
    Permission("apps", "daemonsets", "get", W, "a refused template write: whose spec won"),
    Permission("apps", "controllerrevisions", "list", W, "informer: a DaemonSet's newest revision"),
    Permission("apps", "controllerrevisions", "watch", W, "informer: a DaemonSet's new revision"),
    Permission("", "nodes", "list", CLUSTER, "informer: Node labels (canaryNodeSelector)"),
    Permission("", "nodes", "watch", CLUSTER, "informer: Node label changes"),
    Permission("", "pods", "list", W, "informer: pods of our revisions (by label)"),
    Permission("", "pods", "watch", W, "informer: pod readiness and crash loops"),
    Permission(
        "",
        "pods",
        "delete",
        W,
        "a DaemonSet canary's pods, Node by Node; a StatefulSet canary pod never Ready",
    ),
    Permission("batch", "jobs", "list", W, "informer: check Jobs (job metrics, hooks) we made"),
    Permission("batch", "jobs", "watch", W, "informer: a check Job finishing wakes its Rollout"),
    Permission("batch", "jobs", "create", W, "run a check: smoke test, migration, onAbort hook"),
    Permission("batch", "jobs", "delete", W, "remove finished check Jobs past the history"),
    Permission("", "configmaps", "get", W, "the alert rules file an analysis names (alertRules)"),
    Permission("", "services", "list", W, "informer: stable/canary/active/preview Services"),
    Permission("", "services", "watch", W, "informer: a Service created after its Rollout"),
    Permission("", "services", "patch", W, "point Service selectors at a revision"),
    Permission("", "services", "create", W, "a canary's baseline Service behind a router"),
    Permission("", "services", "delete", W, "remove the baseline Service at promotion or abort"),
    Permission(_GATEWAY, "httproutes", "list", W, "informer (only if the CRD is installed)"),
    Permission(_GATEWAY, "httproutes", "watch", W, "informer: route changes"),
    Permission(
        _GATEWAY, "httproutes", "patch", W, "canary/stable weights, header and mirror rules"
    ),
    Permission(_ISTIO, "virtualservices", "list", W, "informer (only if Istio's CRDs are there)"),
    Permission(_ISTIO, "virtualservices", "watch", W, "informer: VirtualService changes"),
    Permission(
        _ISTIO, "virtualservices", "patch", W, "canary/stable weights, header and mirror routes"
    ),
    Permission(_ISTIO, "destinationrules", "list", W, "informer (only if Istio's CRDs are there)"),
    Permission(_ISTIO, "destinationrules", "watch", W, "informer: DestinationRule changes"),
    Permission(_ISTIO, "destinationrules", "patch", W, "the revision label of the two subsets"),
    Permission(_NETWORKING, "ingresses", "list", W, "informer: stable and canary Ingresses"),
    Permission(_NETWORKING, "ingresses", "watch", W, "informer: Ingress changes"),
    Permission(_NETWORKING, "ingresses", "create", W, "the NGINX canary Ingress (owned)"),
    Permission(_NETWORKING, "ingresses", "patch", W, "canary weight and header annotations"),
    Permission("", "events", "create", W, "Events on the Rollout: steps, verdicts, rollbacks"),
    Permission("", "events", "patch", W, "count repeats of the same Event"),
    Permission("", "events", "get", W, "re-read an Event recorded before a restart"),
    Permission(
        "",
        "events",
        "list",
        W,
        "a check Job without pods: the Job controller's FailedCreate Events say why",
    ),
    Permission("coordination.k8s.io", "leases", "get", OWN, "leader election: read the Lease"),
    Permission("coordination.k8s.io", "leases", "create", OWN, "leader election: first start"),
    Permission("coordination.k8s.io", "leases", "update", OWN, "leader election: renew, release"),
    Permission(
        "coordination.k8s.io",
        "leases",
        "list",
        OWN,
        "--shards: the members' and shards' Leases in one read per retry period",
    ),
    Permission(
        "coordination.k8s.io", "leases", "delete", OWN, "--shards: a stopping replica leaves"
    ),
    Permission("", "secrets", "get", OWN, "webhook URLs of DeliveryPolicy notifications"),
    Permission(
        _DEPLOYCTL,
        "deliverypolicies",
        "list",
        OWN,
        "cluster-wide policies, when the watched namespace is another",
    ),
    Permission(_DEPLOYCTL, "deliverypolicies", "watch", OWN, "cluster-wide policy changes"),
    Permission("", "namespaces", "list", CLUSTER, "informer: Namespace labels (namespaceSelector)"),
    Permission("", "namespaces", "watch", CLUSTER, "informer: Namespace label changes"),
    Permission(
        "admissionregistration.k8s.io",
        "validatingadmissionpolicies",
        "get",
        Scope.ADMISSION,
        "is the approval admission policy installed? (else approvals say unverified)",
    ),
    Permission(
        "admissionregistration.k8s.io",
        "validatingadmissionpolicybindings",
        "get",
        Scope.ADMISSION,
        "is it bound with Deny?",
    ),
)


# The release controller in the management cluster: Releases, their ClusterTargets and
# the kubeconfig Secrets live in one namespace, where it also holds its Lease.
RELEASE_PERMISSIONS: tuple[Permission, ...] = (
    Permission(_DEPLOYCTL, "releases", "list", W, "informer: the initial list of Releases"),
    Permission(_DEPLOYCTL, "releases", "watch", W, "informer: new Releases, promote/abort"),
    Permission(_DEPLOYCTL, "releases/status", "patch", W, "status is its only memory"),
    Permission(_DEPLOYCTL, "clustertargets", "list", W, "informer: the member clusters"),
    Permission(_DEPLOYCTL, "clustertargets", "watch", W, "informer: member cluster changes"),
    Permission("", "secrets", "get", W, "the kubeconfig each ClusterTarget names"),
    Permission("", "events", "create", W, "Events on the Release: waves, clusters, failures"),
    Permission("", "events", "patch", W, "count repeats of the same Event"),
    Permission("", "events", "get", W, "re-read an Event recorded before a restart"),
    Permission("coordination.k8s.io", "leases", "get", OWN, "leader election: read the Lease"),
    Permission("coordination.k8s.io", "leases", "create", OWN, "leader election: first start"),
    Permission("coordination.k8s.io", "leases", "update", OWN, "leader election: renew, release"),
)

# What the release controller does in each member cluster, and nothing more.
MEMBER_PERMISSIONS: tuple[Permission, ...] = (
    Permission(_DEPLOYCTL, "rollouts", "get", Scope.MEMBER, "the Rollout's template and status"),
    Permission(_DEPLOYCTL, "rollouts", "patch", Scope.MEMBER, "set (or restore) its template"),
    Permission(
        "apps",
        "replicasets",
        "list",
        Scope.MEMBER,
        "rollbackAll: the exact template of the revision to return to",
    ),
)


def permissions(
    scope: Scope | None = None, source: tuple[Permission, ...] = PERMISSIONS
) -> tuple[Permission, ...]:
    return tuple(p for p in source if scope is None or p.scope == scope)


def rules(
    scope: Scope | None, source: tuple[Permission, ...] = PERMISSIONS
) -> list[dict[str, list[str]]]:
    """RBAC ``rules`` granting exactly the permissions of ``scope``, one per resource."""
    verbs: dict[tuple[str, str], list[str]] = defaultdict(list)
    for perm in permissions(scope, source):
        verbs[(perm.group, perm.resource)].append(perm.verb)
    return [
        {"apiGroups": [group], "resources": [resource], "verbs": sorted(found)}
        for (group, resource), found in verbs.items()
    ]


_WHERE = {
    Scope.WATCHED: "watched namespaces",
    Scope.OWN: "own namespace",
    Scope.CLUSTER: "cluster (cluster-wide install)",
    Scope.ADMISSION: "cluster (by name)",
    Scope.MEMBER: "application namespace, each member",
}


def markdown_table(source: tuple[Permission, ...] = PERMISSIONS) -> str:
    """The table of ``docs/install.md`` (or, for the release controller's lists,
    docs/multicluster.md): one row per permission."""
    lines = [
        "| API group | resource | verb | where | why |",
        "| --- | --- | --- | --- | --- |",
    ]
    for perm in source:
        where = _WHERE[perm.scope]
        group = f"`{perm.group}`" if perm.group else "core"
        lines.append(f"| {group} | `{perm.resource}` | {perm.verb} | {where} | {perm.why} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] == ["release"]:
        sys.stdout.write(markdown_table(RELEASE_PERMISSIONS + MEMBER_PERMISSIONS))
    else:
        sys.stdout.write(markdown_table())
