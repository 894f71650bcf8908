"""deployctl's own version.

The leader publishes it on its Lease (``controller.names.VERSION_ANNOTATION``) at each
renewal, so ``deployctl version`` reports it with the one permission the CLI already
uses to tell whether a controller runs (``get`` on that Lease; docs/install.md): no
access to the operator's Deployment or pods is needed.
"""

from __future__ import annotations


def client_version() -> str:
    """The installed package's version (``pyproject.toml``), or ``unknown`` when run from a
    source tree that was never installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("deployctl")
    except PackageNotFoundError:
        return "unknown"
