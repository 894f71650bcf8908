"""The kinds deployctl reads and writes, and where each lives in the API.

A ``KindRef`` is the group, version, plural and kind of one resource: enough to build
its URL path, its ``apiVersion`` and the ``plural.group`` that RBAC and error messages
use. The constants below are every kind the operator and the CLI touch; the RBAC
derivation in ``tests/manifests/rbac_from_code.py`` reads them from this file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


@dataclass(frozen=True)
class KindRef:
    """Where a kind lives in the API: group/version, plural resource name, kind."""

    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def resource(self) -> str:
        """``plural.group`` as RBAC and error messages spell it (``replicasets.apps``)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path(
        self,
        *,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str | None = None,
    ) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{name}"
            if subresource is not None:
                base += f"/{subresource}"
        return base


ROLLOUTS = KindRef("deployctl.io", "v1alpha1", "rollouts", "Rollout")
ANALYSIS_TEMPLATES = KindRef("deployctl.io", "v1alpha1", "analysistemplates", "AnalysisTemplate")
DELIVERY_POLICIES = KindRef("deployctl.io", "v1alpha1", "deliverypolicies", "DeliveryPolicy")
REPLICASETS = KindRef("apps", "v1", "replicasets", "ReplicaSet")
STATEFULSETS = KindRef("apps", "v1", "statefulsets", "StatefulSet")
DAEMONSETS = KindRef("apps", "v1", "daemonsets", "DaemonSet")
CONTROLLER_REVISIONS = KindRef("apps", "v1", "controllerrevisions", "ControllerRevision")
DEPLOYMENTS = KindRef("apps", "v1", "deployments", "Deployment")
SERVICES = KindRef("", "v1", "services", "Service")
PODS = KindRef("", "v1", "pods", "Pod")
HTTPROUTES = KindRef("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")
VIRTUAL_SERVICES = KindRef("networking.istio.io", "v1", "virtualservices", "VirtualService")
DESTINATION_RULES = KindRef("networking.istio.io", "v1", "destinationrules", "DestinationRule")
INGRESSES = KindRef("networking.k8s.io", "v1", "ingresses", "Ingress")
LEASES = KindRef("coordination.k8s.io", "v1", "leases", "Lease")
EVENTS = KindRef("", "v1", "events", "Event")
SECRETS = KindRef("", "v1", "secrets", "Secret")
JOBS = KindRef("batch", "v1", "jobs", "Job")
CONFIGMAPS = KindRef("", "v1", "configmaps", "ConfigMap")
RELEASES = KindRef("deployctl.io", "v1alpha1", "releases", "Release")
CLUSTER_TARGETS = KindRef("deployctl.io", "v1alpha1", "clustertargets", "ClusterTarget")
NAMESPACES = KindRef("", "v1", "namespaces", "Namespace", namespaced=False)
NODES = KindRef("", "v1", "nodes", "Node", namespaced=False)
ADMISSION_POLICIES = KindRef(
    "admissionregistration.k8s.io",
    "v1",
    "validatingadmissionpolicies",
    "ValidatingAdmissionPolicy",
    namespaced=False,
)
ADMISSION_BINDINGS = KindRef(
    "admissionregistration.k8s.io",
    "v1",
    "validatingadmissionpolicybindings",
    "ValidatingAdmissionPolicyBinding",
    namespaced=False,
)
SELF_SUBJECT_REVIEWS = KindRef(
    "authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", namespaced=False
)
SELF_SUBJECT_ACCESS_REVIEWS = KindRef(
    "authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False
)


def object_key(obj: Mapping[str, Any]) -> str:
    """``namespace/name`` (or ``name`` for cluster-scoped objects), as the queue uses."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    name = str(meta.get("name", ""))
    return f"{namespace}/{name}" if namespace else name
