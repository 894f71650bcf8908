"""A 3-minute Prometheus outage, the same scenario as the 30 s one (``outage.py``): in
its own file so that it runs beside the others on another worker."""

from __future__ import annotations

from typing import Any

import pytest

from tests.reliability.outage import deploy, run_outage


@pytest.mark.prometheus
@pytest.mark.slow
def test_a_3_minute_outage_pauses_every_strategy_which_then_finishes(
    outage_sandbox: Any, control_plane: Any
) -> None:
    box, prometheus = outage_sandbox
    deploy(box)
    figures = run_outage(box, prometheus, kubeconfig=str(control_plane.kubeconfig), seconds=180)
    print(f"\n3-minute outage: {figures}")
