"""The operator's read-only dashboard (``deployctl controller --dashboard-address``).

It borrows the operator's informers (Rollouts, their ReplicaSets and Jobs,
AnalysisTemplates) so nothing is watched twice, and adds one watch of the Events about
Rollouts; its only extra permission is ``list``/``watch`` on events
(``manifests/dashboard/``). It offers no actions: in a cluster it acts with the
operator's ServiceAccount, not with the rights of whoever opens the page.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.dashboard.server import DashboardServer, split_address
from controller.dashboard.watches import Borrowed, Watches
from controller.kube import Kube
from controller.operator import Operator


@dataclass
class ReadOnlyDashboard:
    watches: Watches
    server: DashboardServer

    def stop(self) -> None:
        self.server.stop()
        self.watches.stop()


def read_only_dashboard(operator: Operator, kube: Kube, address: str) -> ReadOnlyDashboard:
    """Attach to the operator's informers (before it starts them) and start serving."""
    host, port = split_address(address)
    watches = Watches(
        kube,
        namespace=operator.config.namespace,
        borrowed=Borrowed(
            rollouts=operator.rollouts,
            replicasets=operator.replicasets,
            jobs=operator.jobs,
            templates=operator.templates,
        ),
    ).start()
    server = DashboardServer(watches, host=host, port=port, actions=None).start()
    return ReadOnlyDashboard(watches=watches, server=server)
