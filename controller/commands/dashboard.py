"""``deployctl dashboard``: the web dashboard on this machine, with the user's kubeconfig.

Serves on loopback (``--address``, default 127.0.0.1:3100) and opens nothing by itself:
it prints its address and runs until Ctrl-C. It watches the namespace of the context (or
``-n``), or every namespace with ``-A``; what it shows and what its buttons may do are
exactly what the kubeconfig's credentials allow (``--read-only`` offers no actions).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Annotated

import typer

from controller.commands.common import (
    Kubeconfig,
    KubeContext,
    Namespace,
    connect,
    fail,
    handle_errors,
)
from controller.exitcodes import Exit

SYNC_TIMEOUT = 60.0


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@handle_errors
def dashboard(
    address: Annotated[
        str, typer.Option("--address", help="host:port to serve on (loopback by default)")
    ] = "127.0.0.1:3100",
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", "-A", help="Every namespace")
    ] = False,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Show only; offer no actions")
    ] = False,
    kubeconfig: Kubeconfig = None,
    context: KubeContext = None,
    namespace: Namespace = None,
) -> None:
    """Serve a web dashboard of the Rollouts: steps, traffic, measurements against their
    thresholds, history and Events, live; with promote, abort and the other actions as
    the CLI sends them."""
    from controller.dashboard.actions import Actions
    from controller.dashboard.server import DashboardServer, split_address
    from controller.dashboard.watches import Watches

    try:
        host, port = split_address(address)
    except ValueError as exc:
        raise fail(str(exc).replace("--dashboard-address", "--address")) from None
    session = connect(kubeconfig, context, namespace)
    # A server, not a one-shot command: its informers and request handlers log, and those
    # lines go to stderr at warning and above; stdout carries only the address.
    from controller.logging import configure_logging

    configure_logging(level="warning")
    scope = None if all_namespaces else session.namespace
    # One plain list first: a missing CRD or a forbidden list is an error now, with the
    # CLI's message, not an informer retrying in the background forever.
    session.kube.list_rollouts(scope)
    watches = Watches(session.kube, namespace=scope).start()
    server = None
    try:
        if not watches.wait_for_sync(SYNC_TIMEOUT):
            raise fail(
                f"the dashboard's watches did not sync within {SYNC_TIMEOUT:.0f} s; check that "
                "your credentials may list and watch rollouts, replicasets, jobs, "
                "analysistemplates and events",
                Exit.UNREACHABLE,
            )
        actions = None if read_only else Actions(session.kube, user=session.who())
        server = DashboardServer(watches, host=host, port=port, actions=actions)
        try:
            server.start()
        except OSError as exc:
            raise fail(f"cannot serve on {address}: {exc.strerror or exc}") from None
        if not is_loopback(host):
            typer.echo(
                f"warning: serving on {host}, not loopback: anyone who reaches this port sees "
                "what your credentials see",
                err=True,
            )
        where = "all namespaces" if scope is None else f"namespace {scope}"
        typer.echo(f"deployctl dashboard: {server.url} ({where}); Ctrl-C stops it", err=True)
        typer.echo(server.url)
        stop = threading.Event()

        def on_signal(_signum: int, _frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        while not stop.wait(1.0):
            pass
    finally:
        if server is not None:
            server.stop()
        watches.stop()
        session.close()
    raise typer.Exit(0)
