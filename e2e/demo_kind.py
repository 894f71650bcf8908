"""``make demo CLUSTER=kind``: the sandbox demo's story, on a real kind cluster.

Creates (or reuses) a kind cluster, builds and loads the image, installs deployctl with
``kubectl apply -k manifests/`` and the e2e Prometheus, then in namespace ``demo``: v1 is
deployed, a broken image is rolled out and rolled back automatically (the evidence that
decided it is printed), and a good v2 is promoted. Prints one line and exits 0 where
Docker or kind is missing. The cluster is deleted at the end unless ``--keep-cluster``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from e2e.kind import (
    DEFAULT_CLUSTER,
    E2EError,
    KindCluster,
    api_client,
    build_images,
    core_api,
    install,
    missing_prerequisites,
)
from e2e.scenarios import canary_strategy, prepare, rollout, wait_new_revision, wait_phase
from tests.integration.harness import Cluster

NAMESPACE = "demo"


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def evidence(status: dict[str, Any]) -> list[str]:
    """The failed measurements behind a rollback, one line each."""
    lines = []
    for run in status.get("analysisRuns", []):
        for metric in run.get("metrics", []):
            for m in metric.get("measurements", []):
                if m.get("phase") in ("Failed", "Error"):
                    lines.append(f"  {metric.get('name')}: {m.get('value')} at {m.get('at')}")
    return lines


def story(api: k8s.ApiClient) -> None:
    core = core_api(api)
    try:
        core.delete_namespace(NAMESPACE)
        say(f"waiting for the previous {NAMESPACE!r} namespace to go")
        while any(n.metadata.name == NAMESPACE for n in core.list_namespace().items):
            time.sleep(1)
    except k8s.ApiException as exc:
        if exc.status != 404:
            raise
    core.create_namespace({"metadata": {"name": NAMESPACE}})
    cluster = Cluster(api, NAMESPACE)
    strategy = canary_strategy()
    prepare(cluster, strategy=strategy)

    say("deploying v1 (first deploy goes straight to 100%)")
    cluster.apply_rollout(rollout("v1", strategy=strategy))
    v1 = wait_phase(cluster, "Healthy")["stableRevision"]
    say(f"v1 is stable: revision {v1}")

    say("rolling out a broken image (50% of requests answer 500)")
    cluster.apply_rollout(rollout("broken", strategy=strategy))
    wait_new_revision(cluster, v1)
    aborted = wait_phase(cluster, "Degraded")
    say(f"rolled back automatically: {aborted.get('reason')}: {aborted.get('message')}")
    for line in evidence(aborted):
        print(line)

    say("rolling out v2")
    cluster.apply_rollout(rollout("v2", strategy=strategy))
    v2 = wait_new_revision(cluster, v1)["canaryRevision"]
    promoted = wait_phase(cluster, "Healthy")
    say(f"v2 promoted: stable revision {promoted['stableRevision']} (was {v1}, now {v2})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.demo_kind", description=__doc__)
    parser.add_argument(
        "--keep-cluster",
        action="store_true",
        default=os.environ.get("E2E_KEEP", "") not in ("", "0"),
        help="leave the kind cluster running (also E2E_KEEP=1)",
    )
    parser.add_argument("--name", default=DEFAULT_CLUSTER, help="kind cluster name")
    args = parser.parse_args(argv)
    missing = missing_prerequisites()
    if missing:
        print(f"demo on kind: skipped: needs {missing}")
        return 0
    cluster = KindCluster(
        args.name, Path(tempfile.mkdtemp(prefix="deployctl-demo-")) / "kubeconfig"
    )
    try:
        cluster.create()
        cluster.load(build_images())
        install(cluster)
        api = api_client(cluster.kubeconfig)
        try:
            story(api)
        finally:
            api.close()
    except E2EError as exc:
        print(f"demo on kind: failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep_cluster:
            say(f"kept cluster {cluster.name!r}: KUBECONFIG={cluster.kubeconfig} kubectl get ro -A")
        else:
            cluster.delete()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
