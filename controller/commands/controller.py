"""``deployctl controller``: run the operator (in a cluster, or against any kubeconfig)."""

from __future__ import annotations

import os
import signal
from enum import StrEnum
from types import FrameType
from typing import Annotated

import typer

from controller.exitcodes import Exit


class ServiceAddress(StrEnum):
    dns = "dns"
    pods = "pods"


class LogFormat(StrEnum):
    auto = "auto"
    json = "json"
    console = "console"


def controller(
    kubeconfig: Annotated[
        str | None, typer.Option(help="kubeconfig file; default: in-cluster, else $KUBECONFIG")
    ] = None,
    context: Annotated[str | None, typer.Option(help="kubeconfig context")] = None,
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace",
            "-n",
            envvar="DEPLOYCTL_WATCH_NAMESPACE",
            help="Watch this namespace only (default: all)",
        ),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Concurrent reconciles")] = 4,
    prometheus_url: Annotated[
        str,
        typer.Option(
            envvar="DEPLOYCTL_PROMETHEUS_URL",
            help="Prometheus for metrics that name no address (and for presets)",
        ),
    ] = "http://prometheus.monitoring:9090",
    scrape_interval: Annotated[
        float,
        typer.Option(
            min=1.0,
            max=3600.0,
            envvar="DEPLOYCTL_SCRAPE_INTERVAL",
            help="Prometheus's scrape interval in seconds: the step of a compare metric's "
            "range queries (one sample per scrape)",
        ),
    ] = 15.0,
    service_address: Annotated[
        ServiceAddress,
        typer.Option(
            help="How web checks reach a Service: cluster DNS, or a ready pod's IP when the "
            "controller runs outside the cluster network"
        ),
    ] = ServiceAddress.dns,
    web_allow_cidrs: Annotated[
        list[str] | None,
        typer.Option(
            help="Addresses web checks may reach although the address policy refuses them "
            "(loopback, link-local, the API server...); CIDRs, repeatable or comma-separated. "
            "The most specific network wins: 127.0.0.0/8 allows pods on loopback addresses "
            "but not an API server on 127.0.0.1 (docs/security.md#web-address-policy)"
        ),
    ] = None,
    web_deny_cidrs: Annotated[
        list[str] | None,
        typer.Option(help="More addresses web checks may not reach (e.g. the node network); CIDRs"),
    ] = None,
    web_allow_namespaces: Annotated[
        list[str] | None,
        typer.Option(
            help="Namespaces whose Services web checks may reach besides the Rollout's own; "
            "'*' for all"
        ),
    ] = None,
    leader_elect: Annotated[bool, typer.Option(help="Only the Lease holder reconciles")] = True,
    lease_namespace: Annotated[
        str,
        typer.Option(
            envvar="POD_NAMESPACE",
            help="The controller's own namespace: the leader Lease, cluster-wide "
            "DeliveryPolicies, webhook Secrets",
        ),
    ] = "deployctl-system",
    lease_name: Annotated[str, typer.Option()] = "deployctl-controller",
    shards: Annotated[
        int,
        typer.Option(
            min=1,
            max=1024,
            envvar="DEPLOYCTL_SHARDS",
            help="Split the Rollouts into this many shards, each owned through a Lease by "
            "one of the running replicas, which divide them evenly among themselves "
            "(docs/scaling.md); 1: one leader does all, the others stand by",
        ),
    ] = 1,
    service_account: Annotated[
        str,
        typer.Option(
            envvar="POD_SERVICE_ACCOUNT",
            help="The controller's ServiceAccount (in --lease-namespace); Rollouts' pods "
            "may not use it",
        ),
    ] = "deployctl-controller",
    lease_duration: Annotated[float, typer.Option(min=1.0, help="Seconds")] = 15.0,
    renew_deadline: Annotated[float, typer.Option(min=0.5, help="Seconds")] = 10.0,
    retry_period: Annotated[float, typer.Option(min=0.1, help="Seconds")] = 2.0,
    identity: Annotated[
        str, typer.Option(envvar="POD_NAME", help="Lease holder identity (default host_pid)")
    ] = "",
    probe_address: Annotated[
        str, typer.Option(help="host:port serving /metrics, /healthz, /readyz")
    ] = "0.0.0.0:8080",
    dashboard_address: Annotated[
        str | None,
        typer.Option(
            help="host:port serving a read-only web dashboard from the operator's caches "
            "(off by default; see docs/dashboard.md for its Service and RBAC)"
        ),
    ] = None,
    log_format: Annotated[LogFormat, typer.Option()] = LogFormat.auto,
    log_level: Annotated[str, typer.Option()] = "info",
) -> None:
    """Run the operator: watch Rollouts and roll them out."""
    from controller.analysis.addresses import AddressPolicy, parse_networks
    from controller.kube import Kube, KubeError
    from controller.logging import configure_logging
    from controller.operator import Operator, OperatorConfig

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
    if shards > 1 and not leader_elect:
        typer.echo(
            "error: --shards needs leader election (Leases); drop --no-leader-elect", err=True
        )
        raise typer.Exit(Exit.USAGE)
    try:
        web_policy = AddressPolicy(
            allow=parse_networks(web_allow_cidrs or [], flag="--web-allow-cidrs"),
            deny=parse_networks(web_deny_cidrs or [], flag="--web-deny-cidrs"),
            allow_namespaces=frozenset(
                n.strip()
                for item in web_allow_namespaces or []
                for n in item.split(",")
                if n.strip()
            ),
        )
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(Exit.USAGE) from None
    try:
        if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            kube = Kube.in_cluster()
        else:
            kube = Kube.from_kubeconfig(kubeconfig, context)
    except Exception as exc:  # the client raises several unrelated types for bad configs
        typer.echo(f"error: cannot load the cluster configuration: {exc}", err=True)
        raise typer.Exit(Exit.UNREACHABLE) from None
    config = OperatorConfig(
        namespace=namespace,
        workers=workers,
        prometheus_url=prometheus_url,
        scrape_interval=scrape_interval,
        service_address=service_address.value,
        web_policy=web_policy,
        leader_elect=leader_elect,
        lease_namespace=lease_namespace,
        lease_name=lease_name,
        shards=shards,
        service_account=service_account,
        identity=identity,
        lease_duration=lease_duration,
        renew_deadline=renew_deadline,
        retry_period=retry_period,
        probe_host=host or "0.0.0.0",
        probe_port=int(port),
    )
    try:
        operator = Operator(kube, config)
    except KubeError as exc:
        typer.echo(f"error: cannot reach the cluster: {exc}", err=True)
        raise typer.Exit(Exit.UNREACHABLE) from None

    dashboard = None
    if dashboard_address is not None:
        from controller.dashboard.incluster import read_only_dashboard

        try:
            dashboard = read_only_dashboard(operator, kube, dashboard_address)
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(Exit.USAGE) from None

    def stop(signum: int, _frame: FrameType | None) -> None:
        operator.request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        code = operator.run()
    finally:
        if dashboard is not None:
            dashboard.stop()
    raise typer.Exit(code)
