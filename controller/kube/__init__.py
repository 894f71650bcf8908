"""The Kubernetes adapter: the only package of ``controller/`` that imports ``kubernetes``.

One module per job, lowest first (each imports only those above it in this list):

- ``kinds``: ``KindRef`` and the kinds we touch (``ROLLOUTS``, ``REPLICASETS``...);
- ``errors``: the one error tree (drawn in its docstring) and the HTTP status mapping;
- ``bodies``: merge patches, owner references, delete options;
- ``events``: Event names, bodies and the repeat counts (pure but for a lock);
- ``watch``: one open watch stream;
- ``lean``: imported first, so that the client's modules load without the package's
  ``__init__`` (which imports every subpackage);
- ``kubeconfig``: where credentials come from (a kubeconfig file, the in-cluster account);
- ``transport``: sending, counting, error mapping and the only retries (tenacity);
- ``resources``: ``Kube``, typed methods per resource on top of the transport.

Everything callers use is importable from ``controller.kube`` itself.
"""

# First: the client's modules without the package's __init__ (see lean.py).
from controller.kube import lean  # noqa: F401

# isort: split
from controller.kube.bodies import MERGE_PATCH, delete_options, merge_patch, owner_reference
from controller.kube.errors import (
    AlreadyExists,
    Conflict,
    Forbidden,
    Gone,
    KubeconfigError,
    KubeError,
    NamespaceTerminating,
    NotFound,
    Permanent,
    Transient,
    error_from_status,
    retryable,
)
from controller.kube.events import COMPONENT, MAX_EVENT_MESSAGE
from controller.kube.kinds import (
    ADMISSION_BINDINGS,
    ADMISSION_POLICIES,
    ANALYSIS_TEMPLATES,
    CLUSTER_TARGETS,
    CONFIGMAPS,
    CONTROLLER_REVISIONS,
    DAEMONSETS,
    DELIVERY_POLICIES,
    DEPLOYMENTS,
    DESTINATION_RULES,
    EVENTS,
    HTTPROUTES,
    INGRESSES,
    JOBS,
    LEASES,
    NAMESPACES,
    NODES,
    PODS,
    RELEASES,
    REPLICASETS,
    ROLLOUTS,
    SECRETS,
    SELF_SUBJECT_ACCESS_REVIEWS,
    SELF_SUBJECT_REVIEWS,
    SERVICES,
    STATEFULSETS,
    VIRTUAL_SERVICES,
    KindRef,
    Obj,
    object_key,
)
from controller.kube.kubeconfig import KubeconfigContext, kubeconfig_context
from controller.kube.resources import Kube
from controller.kube.transport import NO_RETRY, Listing, RetryPolicy, Transport
from controller.kube.watch import WatchStream

# The time helpers moved to ``controller.times``; their names as this adapter had them.
from controller.times import micro_timestamp as format_micro_time
from controller.times import parse_timestamp as parse_time
from controller.times import timestamp as format_time

__all__ = [
    "ADMISSION_BINDINGS",
    "ADMISSION_POLICIES",
    "ANALYSIS_TEMPLATES",
    "CLUSTER_TARGETS",
    "COMPONENT",
    "CONFIGMAPS",
    "CONTROLLER_REVISIONS",
    "DAEMONSETS",
    "DELIVERY_POLICIES",
    "EVENTS",
    "DESTINATION_RULES",
    "HTTPROUTES",
    "INGRESSES",
    "JOBS",
    "LEASES",
    "MAX_EVENT_MESSAGE",
    "MERGE_PATCH",
    "NAMESPACES",
    "NODES",
    "NO_RETRY",
    "PODS",
    "RELEASES",
    "DEPLOYMENTS",
    "REPLICASETS",
    "ROLLOUTS",
    "SECRETS",
    "SELF_SUBJECT_ACCESS_REVIEWS",
    "SELF_SUBJECT_REVIEWS",
    "SERVICES",
    "STATEFULSETS",
    "VIRTUAL_SERVICES",
    "AlreadyExists",
    "Conflict",
    "Forbidden",
    "Gone",
    "KindRef",
    "Kube",
    "KubeError",
    "KubeconfigContext",
    "KubeconfigError",
    "Listing",
    "NamespaceTerminating",
    "NotFound",
    "Obj",
    "Permanent",
    "RetryPolicy",
    "Transient",
    "Transport",
    "WatchStream",
    "delete_options",
    "error_from_status",
    "format_micro_time",
    "format_time",
    "kubeconfig_context",
    "merge_patch",
    "object_key",
    "owner_reference",
    "parse_time",
    "retryable",
]
