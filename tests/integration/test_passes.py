"""Passes that cannot change anything are not run: counted through the real controller's
own reconcile metric, against the real apiserver."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.harness import Cluster, ControllerProcess, demo_rollout, settled
from tests.waiting import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus]


def counter(url: str, family: str, **labels: str) -> float:
    text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    return sum(
        float(sample.value)
        for metric in text_string_to_metric_families(text)
        if metric.name == family
        for sample in metric.samples
        if sample.name.endswith("_total")
        and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def test_the_echo_of_our_own_status_write_runs_no_pass(
    cluster: Cluster, start_controller: Callable[..., ControllerProcess]
) -> None:
    url = start_controller().metrics_url()
    cluster.apply_rollout(
        demo_rollout(
            "echo", version="v1", replicas=1, strategy={"canary": {"steps": [{"setWeight": 50}]}}
        )
    )
    settled(cluster, "echo")

    def passes() -> float:
        return counter(url, "deployctl_reconcile")

    def seen() -> tuple[float, float]:
        return passes(), counter(url, "deployctl_rollout_events", handled="echo")

    # Let the ReplicaSet's and pods' last status changes run their passes first, and
    # their writes' echoes come back (on a loaded machine an echo can trail its pass).
    last_seen, last_change = [seen()], [time.monotonic()]

    def quiet() -> bool:
        now = seen()
        if now != last_seen[0]:
            last_seen[0], last_change[0] = now, time.monotonic()
        return time.monotonic() - last_change[0] > 5

    wait_until(quiet, timeout=90, what="no more passes or echoes for 5 s", interval=0.5)
    before, echoes = passes(), counter(url, "deployctl_rollout_events", handled="echo")

    # A request on a stable rollout: one pass consumes it, writing status only.
    request = {"action": "promote", "id": "echo-1", "by": "test"}
    cluster.patch_rollout(
        "echo", {"metadata": {"annotations": {"deployctl.io/request": json.dumps(request)}}}
    )
    wait_until(
        lambda: cluster.status("echo").get("lastHandledRequest") == "echo-1",
        timeout=30,
        what="the request handled (its status written)",
    )
    # The write came back through the watch and was recognised as ours...
    wait_until(
        lambda: counter(url, "deployctl_rollout_events", handled="echo"),
        ok=lambda seen_echoes: seen_echoes == echoes + 1,
        timeout=30,
        what=f"the echo of that write (echoes before it: {echoes})",
    )
    # ...and cost no pass: the one for the annotation is all there was.
    assert passes() == before + 1

    # A change that is not ours is still a pass (and writes nothing, so has no echo).
    cluster.patch_rollout("echo", {"metadata": {"labels": {"touched": "yes"}}})
    wait_until(lambda: passes() == before + 2, timeout=30, what="the pass for the label")
    assert counter(url, "deployctl_rollout_events", handled="echo") == echoes + 1
