"""Prometheus down for 30 s and for 3 minutes during analysis, under canary, blue-green
and rolling, with inconclusiveLimit 0 and 30, and one ``onProviderError: abort`` (the
scenario is in ``outage.py``): the rollouts pause, say so, are never Healthy while their
Prometheus is down, and finish by themselves once it is back. Both outages run at once
(two Prometheus servers), so the file takes the longer one's time, not the sum."""

from __future__ import annotations

from typing import Any

import pytest

from tests.reliability.outage import deploy, run_outages


@pytest.mark.prometheus
@pytest.mark.slow
def test_outages_of_30s_and_3_minutes_pause_every_strategy_which_then_finishes(
    outage_sandbox: Any, control_plane: Any
) -> None:
    box, short, long = outage_sandbox
    deploy(box, long_address=long.url)
    figures = run_outages(box, short, long, kubeconfig=str(control_plane.kubeconfig))
    print(f"\noutages: {figures}")
