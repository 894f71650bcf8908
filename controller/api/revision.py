"""Revision identity: the hash of a pod template, as used in ReplicaSet names and labels.

Each revision runs in a ReplicaSet named ``<rollout>-<hash>`` labelled
``deployctl.io/revision=<hash>``. The hash is taken over the template's canonical wire
form, so reordering keys in YAML or re-applying the same file is not a new revision.
"""

from __future__ import annotations

import hashlib
import json

from controller.api.rollout import PodTemplateSpec

HASH_LENGTH = 10
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # like Kubernetes' SafeEncodeString: no vowels


def template_hash(template: PodTemplateSpec) -> str:
    """A short, label-safe, deterministic hash of ``template``."""
    canonical = json.dumps(template.to_dict(), sort_keys=True, separators=(",", ":"))
    number = int.from_bytes(hashlib.sha256(canonical.encode()).digest()[:8], "big")
    chars = []
    for _ in range(HASH_LENGTH):
        number, index = divmod(number, len(_ALPHABET))
        chars.append(_ALPHABET[index])
    return "".join(chars)


def replicaset_name(rollout_name: str, revision: str) -> str:
    return f"{rollout_name}-{revision}"
