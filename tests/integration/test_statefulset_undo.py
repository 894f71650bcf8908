"""``deployctl undo`` for a Rollout delivering a StatefulSet, end to end.

On the sandbox (the real StatefulSet controller, the controller process, the demo app
serving 20 requests/s, the real Prometheus scraping each pod with its
``controller_revision_hash``), every change of the StatefulSet and its pods recorded
from the apiserver (``tests.integration.podwatch``):

- a revision the StatefulSet keeps no ControllerRevision of, another workload's
  ControllerRevision in the same namespace, or a history number out of range, is refused
  on stderr with a non-zero exit, and nothing is written: not the StatefulSet, not the
  Rollout, no pod restarted;
- ``undo --with-steps`` goes back to the previous promoted revision as a canary of its
  template: the partition moves 5 -> 4 -> 2 -> 0 -> 5, the analysis runs on that
  revision, each ordinal is replaced once, highest first, one at a time, and the pods
  come back with the earlier ``controller-revision-hash`` itself;
- ``undo --to-revision N`` (a history number) fast-tracks to 100% like any undo: each
  ordinal replaced once, highest first, and the history records the undo.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.integration.harness import CiCli, Cluster
from tests.integration.podwatch import Recorder
from tests.integration.test_statefulset import (
    NAME,
    REPLICAS,
    REVISION,
    all_on,
    caught_up,
    most_down,
    on_v1_driven_by,
    partitions,
    pods,
    recording,
    statefulset,
    template,
    uids_per_pod,
)

LEASE = "deployctl-sts-undo"


def ordinals_reaching(recorder: Recorder, revision: str) -> list[int]:
    """The ordinals in the order their pod first showed ``revision``, by etcd order."""
    seen: list[int] = []
    for change in sorted(recorder.changes, key=lambda c: c.rv):
        meta = change.obj["metadata"]
        if change.kind != "pod" or not meta["name"].startswith(f"{NAME}-"):
            continue
        ordinal = int(meta["name"].rsplit("-", 1)[1])
        if (meta.get("labels") or {}).get(REVISION) == revision and ordinal not in seen:
            seen.append(ordinal)
    return seen


def history(cli: CiCli) -> list[dict[str, Any]]:
    shown = cli("history", NAME, "-n", cli.namespace, "-o", "json", timeout=60)
    assert shown.returncode == 0, shown.stderr
    return list(json.loads(shown.stdout)["history"])


def test_undo_of_a_statefulset_rollout_goes_back_through_its_controller_revisions(
    cluster: Cluster, ci_cli: Callable[..., CiCli], traffic: Any, kube_api: Any
) -> None:
    ns = cluster.namespace
    cli = ci_cli(LEASE)
    v1 = on_v1_driven_by(cluster, cli)
    traffic(ns, service=NAME, rate_per_second=20)
    result = cli(
        "rollout", NAME, "-n", ns, "--image", "app=deployctl/demo-app:v2", "--wait",
        "--timeout", "300s", "-o", "json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    v2 = json.loads(result.stdout)["revision"]
    assert v2 != v1
    at_v2 = {name: pod.metadata.uid for name, pod in all_on(cluster, v2).items()}

    # 1: revisions that do not exist: refused on stderr, nothing written anywhere.
    generation = statefulset(cluster).metadata.generation
    annotations = dict(cluster.rollout(NAME)["metadata"].get("annotations") or {})
    missing = cli("undo", NAME, "-n", ns, "--to-revision", f"{NAME}-0000000")
    assert missing.returncode != 0, missing.stdout
    assert f"revision {NAME}-0000000 has no ControllerRevision" in missing.stderr
    # Another application's revision (its own labels, so the StatefulSet does not adopt
    # it), stored the way the StatefulSet controller stores one.
    cluster.apps.create_namespaced_controller_revision(
        ns,
        {
            "metadata": {"name": "cache-5c9d8f7b6", "labels": {"app": "cache"}},
            "revision": 1,
            "data": {"spec": {"template": {**template("v9"), "$patch": "replace"}}},
        },
    )
    foreign = cli("undo", NAME, "-n", ns, "--to-revision", "cache-5c9d8f7b6")
    assert foreign.returncode != 0, foreign.stdout
    assert "revision cache-5c9d8f7b6 has no ControllerRevision" in foreign.stderr
    out_of_range = cli("undo", NAME, "-n", ns, "--to-revision", "99")
    assert out_of_range.returncode != 0, out_of_range.stdout
    assert "--to-revision 99: history has entries 1.." in out_of_range.stderr
    for refused in (missing, foreign, out_of_range):
        assert "Traceback" not in refused.stderr, refused.stderr
    assert statefulset(cluster).metadata.generation == generation
    assert statefulset(cluster).spec.template.spec.containers[0].image.endswith(":v2")
    assert (cluster.rollout(NAME)["metadata"].get("annotations") or {}) == annotations
    assert {name: pod.metadata.uid for name, pod in pods(cluster).items()} == at_v2

    # 2: undo --with-steps: the previous promoted revision (v1) delivered as a canary of
    # its template from the StatefulSet's own ControllerRevision, step by step, analysed.
    with recording(cluster, kube_api) as recorder:
        result = cli(
            "undo", NAME, "-n", ns, "--with-steps", "--wait", "--timeout", "400s",
            "-o", "json",
        )  # fmt: skip
        assert result.returncode == 0, (result.stdout, result.stderr)
        outcome = json.loads(result.stdout)
        at_v1 = all_on(cluster, v1)
        caught_up(recorder)
    assert outcome["revision"] == v1 and outcome["outcome"] == "Promoted", outcome
    assert partitions(recorder) == [REPLICAS, 4, 2, 0, REPLICAS]
    assert ordinals_reaching(recorder, v1) == [4, 3, 2, 1, 0]
    assert {name: len(uids) for name, uids in uids_per_pod(recorder).items()} == {
        f"{NAME}-{o}": 2 for o in range(REPLICAS)
    }
    assert all(at_v1[name].metadata.uid != uid for name, uid in at_v2.items())
    assert most_down(recorder) <= 1
    status = cluster.status(NAME)
    assert status["stableRevision"] == v1
    runs = [r for r in status["analysisRuns"] if r["revision"] == v1]
    assert runs and runs[-1]["phase"] == "Successful", status["analysisRuns"]
    assert statefulset(cluster).spec.template.spec.containers[0].image.endswith(":v1")

    # 3: undo --to-revision N (v2's history number): fast-tracked to 100% like any undo,
    # each ordinal still replaced once, highest first, by the StatefulSet controller.
    rows = history(cli)
    number = max(r["number"] for r in rows if r["revision"] == v2)
    with recording(cluster, kube_api) as recorder:
        result = cli(
            "undo", NAME, "-n", ns, "--to-revision", str(number), "--wait",
            "--timeout", "400s", "-o", "json", "--reason", "back to v2",
        )  # fmt: skip
        assert result.returncode == 0, (result.stdout, result.stderr)
        all_on(cluster, v2)
        caught_up(recorder)
    assert json.loads(result.stdout)["revision"] == v2, result.stdout
    seen = partitions(recorder)
    # The fast track may meet the first step (partition 4) before its request is read.
    assert seen[0] == REPLICAS and seen[-1] == REPLICAS and 0 in seen, seen
    assert seen[1:-1] == sorted(seen[1:-1], reverse=True), seen
    assert ordinals_reaching(recorder, v2) == [4, 3, 2, 1, 0]
    assert all(len(uids) == 2 for uids in uids_per_pod(recorder).values())
    assert most_down(recorder) <= 1
    assert cluster.status(NAME)["stableRevision"] == v2
    last = history(cli)[-1]
    assert last["revision"] == v2 and last["outcome"] == "Promoted", last
    assert last["reason"] == "back to v2", last
