"""A 30 s Prometheus outage during analysis under canary, blue-green and rolling, with
inconclusiveLimit 0 and 30 and one ``onProviderError: abort`` (see ``outage.py``): the
six pause, say so, are never Healthy while it is down, and finish once it is back."""

from __future__ import annotations

from typing import Any

import pytest

from tests.reliability.outage import deploy, run_outage


@pytest.mark.prometheus
def test_a_30s_outage_pauses_every_strategy_which_then_finishes(
    outage_sandbox: Any, control_plane: Any
) -> None:
    box, prometheus = outage_sandbox
    deploy(box)
    figures = run_outage(box, prometheus, kubeconfig=str(control_plane.kubeconfig), seconds=30)
    print(f"\n30 s outage: {figures}")
