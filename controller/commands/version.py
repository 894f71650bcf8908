"""``deployctl version``: this client's version and the running controller's.

The controller's comes from the annotation its leader writes on the leader Lease
(``controller.version``), read with the same optional permission ``--wait`` uses; when
the Lease cannot be read the line says why instead of failing the command.
"""

from __future__ import annotations

import os
import platform
from typing import Annotated, Any

import typer

from controller.commands.common import (
    CONTROLLER_LEASE_ENV,
    CONTROLLER_NAMESPACE_ENV,
    DEFAULT_CONTROLLER_LEASE,
    DEFAULT_CONTROLLER_NAMESPACE,
    Kubeconfig,
    KubeContext,
    Output,
    OutputOpt,
    connect,
    describe_kube_error,
    handle_errors,
    print_document,
)
from controller.names import VERSION_ANNOTATION
from controller.version import client_version


def controller_version(kubeconfig: Any, context: str | None) -> dict[str, str]:
    """``{"version": ..., "leader": ..., "lease": ...}`` or ``{"unknown": why}``."""
    from controller.kube import KubeconfigError, KubeError, NotFound

    namespace = os.environ.get(CONTROLLER_NAMESPACE_ENV, DEFAULT_CONTROLLER_NAMESPACE)
    name = os.environ.get(CONTROLLER_LEASE_ENV, DEFAULT_CONTROLLER_LEASE)
    where = f"{namespace}/{name}"
    try:
        session = connect(kubeconfig, context, None)
    except KubeconfigError as exc:
        return {"unknown": str(exc)}
    try:
        lease = session.kube.get_lease(namespace, name, timeout=10)
    except NotFound:
        return {"unknown": f"no controller has run here (no leader Lease {where})"}
    except KubeError as exc:
        return {"unknown": describe_kube_error(exc)[0]}
    finally:
        session.close()
    meta = lease.get("metadata") or {}
    holder = str((lease.get("spec") or {}).get("holderIdentity") or "")
    published = (meta.get("annotations") or {}).get(VERSION_ANNOTATION)
    if not holder:
        return {"unknown": f"no controller holds the leader Lease {where}"}
    if not published:
        return {
            "unknown": f"the leader {holder} does not publish its version "
            "(it predates `deployctl version`)"
        }
    return {"version": str(published), "leader": holder, "lease": where}


@handle_errors
def version(
    client: Annotated[
        bool, typer.Option("--client", help="Only this client's version; no cluster")
    ] = False,
    output: OutputOpt = Output.text,
    kubeconfig: Kubeconfig = None,
    context: KubeContext = None,
) -> None:
    """This client's version and, when the cluster answers, the controller's."""
    document: dict[str, Any] = {
        "client": {"version": client_version(), "python": platform.python_version()}
    }
    if not client:
        document["controller"] = controller_version(kubeconfig, context)
    if output is not Output.text:
        print_document(document, output)
        return
    typer.echo(f"client: deployctl {client_version()} (Python {platform.python_version()})")
    found = document.get("controller")
    if found is None:
        return
    if "version" in found:
        typer.echo(
            f"controller: {found['version']} (leader {found['leader']}, Lease {found['lease']})"
        )
    else:
        typer.echo(f"controller: unknown: {found['unknown']}")
