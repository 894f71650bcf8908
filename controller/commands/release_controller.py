"""``deployctl release-controller``: run the release controller in the management cluster.

It needs the management cluster's credentials only (Releases, ClusterTargets and their
Secrets, Events, its Lease); member clusters are reached with the kubeconfig each
ClusterTarget's Secret holds. See docs/multicluster.md and manifests/release-controller/.
"""

from __future__ import annotations

import os
import signal
from types import FrameType
from typing import Annotated

import typer

from controller.commands.controller import LogFormat
from controller.exitcodes import Exit


def release_controller(
    kubeconfig: Annotated[
        str | None, typer.Option(help="kubeconfig file; default: in-cluster, else $KUBECONFIG")
    ] = None,
    context: Annotated[str | None, typer.Option(help="kubeconfig context")] = None,
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace",
            "-n",
            help="Serve Releases of this namespace only (default: all; needs Secrets there)",
        ),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, max=32, help="Releases handled at once")] = 2,
    poll_interval: Annotated[
        float, typer.Option(min=0.2, help="Seconds between reads of the members in flight")
    ] = 10.0,
    read_timeout: Annotated[
        float, typer.Option(min=0.5, help="Seconds a pass waits for the members' answers")
    ] = 4.0,
    leader_elect: Annotated[bool, typer.Option(help="Only the Lease holder acts")] = True,
    lease_namespace: Annotated[
        str, typer.Option(envvar="POD_NAMESPACE", help="Namespace of the leader Lease")
    ] = "deployctl-system",
    lease_name: Annotated[str, typer.Option()] = "deployctl-release-controller",
    lease_duration: Annotated[float, typer.Option(min=1.0, help="Seconds")] = 15.0,
    renew_deadline: Annotated[float, typer.Option(min=0.5, help="Seconds")] = 10.0,
    retry_period: Annotated[float, typer.Option(min=0.1, help="Seconds")] = 2.0,
    identity: Annotated[
        str, typer.Option(envvar="POD_NAME", help="Lease holder identity (default host_pid)")
    ] = "",
    probe_address: Annotated[
        str, typer.Option(help="host:port serving /metrics, /healthz, /readyz")
    ] = "0.0.0.0:8080",
    log_format: Annotated[LogFormat, typer.Option()] = LogFormat.auto,
    log_level: Annotated[str, typer.Option()] = "info",
) -> None:
    """Run the release controller: roll Releases through their waves of clusters."""
    from controller.kube import Kube, KubeError
    from controller.logging import configure_logging
    from controller.release.controller import ReleaseController, ReleaseControllerConfig

    configure_logging(fmt=log_format.value, level=log_level)
    host, _, port = probe_address.rpartition(":")
    if not port.isdigit():
        typer.echo(f"error: --probe-address must be host:port (got {probe_address!r})", err=True)
        raise typer.Exit(Exit.USAGE)
    if not lease_duration > renew_deadline > retry_period * 1.2:
        typer.echo(
            "error: need --lease-duration > --renew-deadline > 1.2 x --retry-period", err=True
        )
        raise typer.Exit(Exit.USAGE)
    try:
        if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            kube = Kube.in_cluster()
        else:
            kube = Kube.from_kubeconfig(kubeconfig, context)
    except Exception as exc:  # the client raises several unrelated types for bad configs
        typer.echo(f"error: cannot load the cluster configuration: {exc}", err=True)
        raise typer.Exit(Exit.UNREACHABLE) from None
    config = ReleaseControllerConfig(
        namespace=namespace,
        workers=workers,
        poll_interval=poll_interval,
        read_timeout=read_timeout,
        leader_elect=leader_elect,
        lease_namespace=lease_namespace,
        lease_name=lease_name,
        identity=identity,
        lease_duration=lease_duration,
        renew_deadline=renew_deadline,
        retry_period=retry_period,
        probe_host=host or "0.0.0.0",
        probe_port=int(port),
    )
    try:
        controller = ReleaseController(kube, config)
    except KubeError as exc:
        typer.echo(f"error: cannot reach the cluster: {exc}", err=True)
        raise typer.Exit(Exit.UNREACHABLE) from None

    def stop(signum: int, _frame: FrameType | None) -> None:
        controller.request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    raise typer.Exit(controller.run())
