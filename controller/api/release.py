"""The Release and ClusterTarget resources: one version rolled through waves of clusters.

A ``Release`` lives in a management cluster (which may also be one of its members). It
names an application's Rollout (``rollout: {namespace, name}``, the same in every
member), the change to make to its pod template (``images`` and/or ``templatePatch``)
and ``waves`` of clusters. The release controller sets the template in the clusters of
one wave, waits until each is Healthy on the new revision (the member's own deployctl
operator runs the canary, the analysis and any rollback), lets the wave ``soak``, then
goes on to the next wave. On the first bad signal it halts; ``onFailure: rollbackAll``
also returns the clusters it already changed to their previous revision.

A ``ClusterTarget`` names one member cluster: a Secret *in the same namespace* holding a
kubeconfig with that cluster's address and credentials. Only self-contained
kubeconfigs are accepted (inline certificates and tokens, ``https``); anything that
would make the release controller run a command or read a local file is refused
(``controller.release.credentials``).

The status models are in ``controller.api.release_status``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from controller.api.common import ApiModel, ObjectMeta, ObjectName
from controller.api.duration import Duration
from controller.api.release_status import ReleaseStatus

MAX_WAVES = 50
MAX_CLUSTERS = 200
DEFAULT_CLUSTER_TIMEOUT = 1800.0
DEFAULT_UNREACHABLE_TIMEOUT = 300.0

OnFailure = Literal["halt", "rollbackAll"]
ContainerName = Annotated[str, Field(min_length=1, max_length=63)]
Image = Annotated[str, Field(min_length=1, max_length=1024)]


class RolloutRef(ApiModel):
    """The application's Rollout, at the same namespace/name in every member cluster."""

    namespace: ObjectName
    name: ObjectName

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class Wave(ApiModel):
    """Clusters changed together; the next wave starts once all are Healthy and soaked."""

    name: ObjectName
    clusters: Annotated[list[ObjectName], Field(min_length=1, max_length=MAX_CLUSTERS)] = Field(
        description="ClusterTarget names, in the Release's namespace"
    )
    soak: Duration = Field(
        default=0.0,
        description="How long the wave is watched, once its last cluster is Healthy on the "
        "new revision, before the next wave starts",
    )
    max_parallel: Annotated[int, Field(ge=1, le=MAX_CLUSTERS)] | None = Field(
        default=None,
        description="At most this many of the wave's clusters rolling out at once (default: all)",
    )

    @model_validator(mode="after")
    def _check(self) -> Wave:
        repeated = sorted({c for c in self.clusters if self.clusters.count(c) > 1})
        if repeated:
            raise ValueError(f"wave {self.name!r} names a cluster twice: {', '.join(repeated)}")
        return self

    @property
    def parallel(self) -> int:
        return self.max_parallel or len(self.clusters)


class ReleaseSpec(ApiModel):
    rollout: RolloutRef
    images: dict[ContainerName, Image] = Field(
        default_factory=dict,
        description="New image per container name, e.g. {app: shop/checkout:1.4.2}",
    )
    template_patch: dict[str, Any] = Field(
        default_factory=dict,
        description="A merge patch of the pod template (RFC 7386; containers, "
        "initContainers, env and volumes are merged by name), applied before images",
    )
    waves: Annotated[list[Wave], Field(min_length=1, max_length=MAX_WAVES)]
    on_failure: OnFailure = Field(
        default="halt",
        description="halt: leave changed clusters as they are; rollbackAll: return every "
        "cluster the release changed to its previous revision (fast-tracked)",
    )
    cluster_timeout: Duration = Field(
        default=DEFAULT_CLUSTER_TIMEOUT,
        description="How long one cluster may take to become Healthy on the new revision; "
        "time held by the member's delivery policy does not count",
    )
    unreachable_timeout: Duration = Field(
        default=DEFAULT_UNREACHABLE_TIMEOUT,
        description="How long a cluster the release needs may stay unreachable before "
        "the release fails",
    )
    reason: Annotated[str, Field(max_length=1024)] = Field(
        default="", description="Why; recorded in each member Rollout's history"
    )

    @model_validator(mode="after")
    def _check(self) -> ReleaseSpec:
        problems: list[str] = []  # all of them at once: a person fixes the file in one go
        if not self.images and not self.template_patch:
            problems.append("give images and/or templatePatch: the change to roll out")
        names = [w.name for w in self.waves]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            problems.append(f"wave names must be unique; repeated: {', '.join(repeated)}")
        seen: dict[str, str] = {}
        for wave in self.waves:
            for cluster in wave.clusters:
                if cluster in seen:
                    problems.append(
                        f"cluster {cluster!r} is in waves {seen[cluster]!r} and {wave.name!r}; "
                        "a cluster belongs to one wave"
                    )
                seen[cluster] = wave.name
        if len(seen) > MAX_CLUSTERS:
            problems.append(f"a release may name at most {MAX_CLUSTERS} clusters")
        if self.cluster_timeout <= 0 or self.unreachable_timeout <= 0:
            problems.append("clusterTimeout and unreachableTimeout must be longer than 0s")
        for key in ("metadata", "spec"):
            if key in self.template_patch and not isinstance(self.template_patch[key], dict):
                problems.append(f"templatePatch.{key} must be a mapping")
        unknown = sorted(set(self.template_patch) - {"metadata", "spec"})
        if unknown:
            problems.append(
                f"templatePatch may hold metadata and spec only (got {', '.join(unknown)})"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def wave_of(self, cluster: str) -> Wave:
        return next(w for w in self.waves if cluster in w.clusters)

    def clusters(self) -> list[str]:
        """Every cluster, in wave order."""
        return [c for w in self.waves for c in w.clusters]


class Release(ApiModel):
    api_version: Literal["deployctl.io/v1alpha1"] = "deployctl.io/v1alpha1"
    kind: Literal["Release"] = "Release"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ReleaseSpec
    status: ReleaseStatus | None = None


class KubeconfigSecretRef(ApiModel):
    """A key of a Secret in the ClusterTarget's own namespace."""

    name: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[a-z0-9.-]+$")]
    key: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")] = (
        "kubeconfig"
    )


class ClusterTargetSpec(ApiModel):
    kubeconfig_secret_ref: KubeconfigSecretRef = Field(
        description="The Secret (same namespace) and key holding a self-contained kubeconfig"
    )
    context: Annotated[str, Field(min_length=1, max_length=253)] | None = Field(
        default=None, description="Kubeconfig context to use (default: its current-context)"
    )
    description: Annotated[str, Field(max_length=1024)] = ""


class ClusterTarget(ApiModel):
    api_version: Literal["deployctl.io/v1alpha1"] = "deployctl.io/v1alpha1"
    kind: Literal["ClusterTarget"] = "ClusterTarget"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ClusterTargetSpec
