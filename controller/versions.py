"""Versions of images: semantic versions read from image tags, and downgrade detection.

``deployctl rollout`` refuses an accidental downgrade (``1.4.2`` → ``1.3.0``) unless
``--allow-downgrade`` is given, ``deployctl history`` shows each revision's version, and a
DeliveryPolicy can ask for an approval on a major version change. Tags that are not
semantic versions (``latest``, a git SHA, a date) are not compared: no opinion is better
than a wrong one.

Parsing uses the ``semver`` package (python-semver, the reference implementation of the
SemVer 2.0 spec, including pre-release and build precedence) rather than a regex of our
own; a leading ``v`` is accepted as most registries' tags carry one. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import semver


def image_tag(image: str) -> str | None:
    """The tag of ``registry:5000/team/app:1.4.2@sha256:...`` (``1.4.2``), or None."""
    reference = image.split("@", 1)[0]
    last = reference.rsplit("/", 1)[-1]
    if ":" not in last:
        return None
    return last.rsplit(":", 1)[1] or None


def parse_version(tag: str | None) -> semver.Version | None:
    """``1.4.2``, ``v1.4.2`` or ``1.5.0-rc.1`` as a Version; anything else None."""
    if not tag:
        return None
    text = tag[1:] if tag[:1] in ("v", "V") else tag
    try:
        return semver.Version.parse(text)
    except (ValueError, TypeError):
        return None


def image_version(image: str) -> semver.Version | None:
    return parse_version(image_tag(image))


def version_label(images: Mapping[str, str]) -> str:
    """What ``history`` shows: the version of each container image that has one."""
    parts = []
    for container, image in images.items():
        version = image_version(image)
        if version is not None:
            parts.append(str(version) if len(images) == 1 else f"{container}={version}")
    return ",".join(parts)


@dataclass(frozen=True)
class Downgrade:
    container: str
    current: str
    requested: str

    def describe(self) -> str:
        return f"container {self.container!r}: {self.current} -> {self.requested}"


def downgrades(current: Mapping[str, str], requested: Mapping[str, str]) -> list[Downgrade]:
    """Containers whose requested image has a lower semantic version than the current one."""
    found = []
    for container, image in requested.items():
        before = image_version(current.get(container, ""))
        after = image_version(image)
        if before is not None and after is not None and after < before:
            found.append(Downgrade(container, str(before), str(after)))
    return found


def is_major_change(current: Mapping[str, str], requested: Mapping[str, str]) -> bool:
    """True when any container's major version changes (either way)."""
    for container, image in requested.items():
        before = image_version(current.get(container, ""))
        after = image_version(image)
        if before is not None and after is not None and after.major != before.major:
            return True
    return False
