"""deployctl's own version, and where a running controller publishes its version.

The leader writes its version into an annotation of its leader Lease each time it
renews, so ``deployctl version`` can report it with the one permission the CLI already
uses to tell whether a controller runs (``get`` on that Lease; docs/install.md):
no access to the operator's Deployment or pods is needed.
"""

from __future__ import annotations

VERSION_ANNOTATION = "deployctl.io/version"


def client_version() -> str:
    """The installed package's version (``pyproject.toml``), or ``unknown`` when run from a
    source tree that was never installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("deployctl")
    except PackageNotFoundError:
        return "unknown"
