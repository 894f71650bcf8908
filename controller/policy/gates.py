"""Promotion gates: a Rollout starts a revision only once another Rollout promoted it.

``spec.requires: {rollout: staging/checkout}`` on the production Rollout says "only
what passed staging". The reconciler reads the other Rollout's status from its cache and
calls ``gate_satisfied``; the gate is satisfied when an entry of that status's history
has outcome ``Promoted`` and the same images as the candidate, compared per image:

* both references carry a digest (``@sha256:...``): the digests must be equal (the
  repository may differ, e.g. a registry mirror: the content is the same);
* otherwise the repositories (``docker.io/library/`` normalised) and tags must be equal;
* an image without a tag, or tagged ``latest``, proves nothing: never satisfied.

The other rollout's history is bounded (``MAX_HISTORY`` entries), so a release promoted
long ago in staging may no longer be found; it then has to pass staging again.

>>> parse_image("shop/checkout:1.4.2")
ImageRef(repository='docker.io/shop/checkout', tag='1.4.2', digest=None)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from controller.api import Rollout, RolloutStatus
from controller.api import reasons as r
from controller.api.status import HistoryEntry

DEFAULT_REGISTRY = "docker.io"


@dataclass(frozen=True)
class ImageRef:
    repository: str
    tag: str | None
    digest: str | None

    @property
    def fixed(self) -> bool:
        """Whether the reference names one image: a digest, or a tag other than latest."""
        return self.digest is not None or (self.tag is not None and self.tag != "latest")


def parse_image(reference: str) -> ImageRef:
    """Split ``[registry/]path[:tag][@digest]`` and normalise the registry part."""
    name, _, digest = reference.strip().partition("@")
    head, _, last = name.rpartition("/")
    repo_last, colon, tag = last.partition(":")
    path = f"{head}/{repo_last}" if head else repo_last
    first = path.split("/", 1)[0]
    if "/" not in path or not ("." in first or ":" in first or first == "localhost"):
        path = f"{DEFAULT_REGISTRY}/{path}"
    if path.startswith("index.docker.io/"):
        path = DEFAULT_REGISTRY + path.removeprefix("index.docker.io")
    registry, _, rest = path.partition("/")
    if registry == DEFAULT_REGISTRY and "/" not in rest:
        path = f"{DEFAULT_REGISTRY}/library/{rest}"
    return ImageRef(repository=path, tag=tag if colon else None, digest=digest or None)


def same_image(a: ImageRef, b: ImageRef) -> bool:
    if a.digest is not None and b.digest is not None:
        return a.digest == b.digest
    return a.repository == b.repository and a.tag is not None and a.tag == b.tag


@dataclass(frozen=True)
class GateDecision:
    satisfied: bool
    reason: str
    """``GateSatisfied`` or ``AwaitingGate`` (reasons.py)."""
    message: str
    source: str = ""
    """The required Rollout, ``namespace/name``."""
    revision: str | None = None
    """The source's promoted revision whose images matched."""


def _covers(entry: HistoryEntry, wanted: Mapping[str, ImageRef]) -> bool:
    promoted = [parse_image(image) for image in entry.images.values()]
    return all(any(same_image(want, have) for have in promoted) for want in wanted.values())


def gate_satisfied(
    rollout: Rollout, other_rollout_status: RolloutStatus | None, images: Mapping[str, str]
) -> GateDecision:
    """Whether ``images`` (container -> image) were promoted by ``spec.requires.rollout``.

    ``other_rollout_status`` is None when that Rollout does not exist (or has no status
    yet). A Rollout without ``requires`` is always satisfied.
    """
    gate = rollout.spec.requires
    if gate is None:
        return GateDecision(True, r.GATE_SATISFIED, "no promotion gate")
    source = gate.rollout
    own = f"{rollout.metadata.namespace}/{rollout.metadata.name}"
    listed = ", ".join(f"{name}={image}" for name, image in sorted(images.items()))
    if source == own:
        return GateDecision(
            False, r.AWAITING_GATE, f"requires.rollout {source} names this Rollout itself", source
        )
    wanted = {name: parse_image(image) for name, image in images.items()}
    loose = sorted(name for name, ref in wanted.items() if not ref.fixed)
    if loose:
        return GateDecision(
            False,
            r.AWAITING_GATE,
            f"promotion gate {source}: image(s) of {', '.join(loose)} have no fixed tag or "
            "digest (untagged or :latest), so it cannot be shown they passed; pin a "
            "version or digest",
            source,
        )
    if other_rollout_status is None:
        return GateDecision(
            False,
            r.AWAITING_GATE,
            f"waiting for promotion gate: Rollout {source} not found (or has no status yet)",
            source,
        )
    for entry in reversed(other_rollout_status.history):
        if entry.outcome == "Promoted" and _covers(entry, wanted):
            when = f" at {entry.finished_at}" if entry.finished_at else ""
            return GateDecision(
                True,
                r.GATE_SATISFIED,
                f"promotion gate: {listed} promoted in {source} (revision {entry.revision}{when})",
                source,
                entry.revision,
            )
    return GateDecision(
        False,
        r.AWAITING_GATE,
        f"waiting for promotion gate: {listed} not yet promoted in {source}",
        source,
    )
