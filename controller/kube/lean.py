"""Import the Kubernetes client's modules without running the ``kubernetes`` package's
``__init__``.

``kubernetes/__init__.py`` imports every subpackage: the REST client the adapter uses,
and also the kubeconfig loader (which imports an OAuth stack for OIDC token refresh
whatever the kubeconfig holds), the dynamic client, websocket streams, leader election
and informers. That was a quarter of a CLI command's start. So when nothing has imported
``kubernetes`` yet, the package is registered here as a module built from its own spec
but not executed (same ``__path__``): ``import kubernetes.client`` then runs only
``kubernetes/client``'s modules, and every other submodule is still imported as usual
when something asks for it (``kubernetes.config`` by ``controller.kube.kubeconfig`` for a
kubeconfig it hands to the official loader). A process that has already imported the
package (a test, the sandbox) keeps it as it is.

``controller/kube/__init__.py`` imports this module before anything else.
"""

from __future__ import annotations

import importlib.util
import sys

PACKAGE = "kubernetes"


def register_bare_package() -> bool:
    """Register ``kubernetes`` unexecuted unless it is imported already; True if it was."""
    if PACKAGE in sys.modules:
        return False
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.submodule_search_locations is None:
        return False  # not installed: the ordinary import says so
    sys.modules[PACKAGE] = importlib.util.module_from_spec(spec)
    return True


register_bare_package()
