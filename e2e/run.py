"""``make e2e``: the rollout scenarios on a real kind cluster, end to end.

Steps: check Docker and kind (missing: print one line, exit 0); create a kind cluster
(or reuse one of the same name); build the image and its demo versions and ``kind load``
them; ``kubectl apply -k manifests/`` as a user would, then the e2e Prometheus from
``e2e/manifests/``; run ``pytest e2e/`` with ``E2E_KUBECONFIG`` pointing at the cluster;
on failure dump the operator's logs; delete the cluster unless ``--keep-cluster`` (or
``E2E_KEEP=1``).

    python -m e2e.run [--keep-cluster] [--name NAME] [-- PYTEST ARGS...]

The exit code is pytest's (1 when setup failed), 0 when skipped.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from e2e.kind import (
    DEFAULT_CLUSTER,
    REPO,
    E2EError,
    KindCluster,
    build_images,
    dump_diagnostics,
    install,
    missing_prerequisites,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m e2e.run", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--keep-cluster",
        action="store_true",
        default=os.environ.get("E2E_KEEP", "") not in ("", "0"),
        help="leave the kind cluster running for debugging (also E2E_KEEP=1)",
    )
    parser.add_argument("--name", default=DEFAULT_CLUSTER, help="kind cluster name")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (after --)")
    return parser.parse_args(argv)


def run_scenarios(cluster: KindCluster, pytest_args: list[str]) -> int:
    command = [sys.executable, "-m", "pytest", str(REPO / "e2e"), "-p", "no:cacheprovider"]
    print(f"+ E2E_KUBECONFIG={cluster.kubeconfig} {' '.join(command + pytest_args)}", flush=True)
    done = subprocess.run(
        command + pytest_args,
        cwd=REPO,
        env={**os.environ, "E2E_KUBECONFIG": str(cluster.kubeconfig)},
        check=False,
    )
    return done.returncode


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = missing_prerequisites()
    if missing:
        print(f"e2e: skipped: needs {missing}")
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="deployctl-e2e-"))
    cluster = KindCluster(args.name, workdir / "kubeconfig")
    code = 1
    try:
        cluster.create()
        cluster.load(build_images())
        install(cluster)
        code = run_scenarios(cluster, list(args.pytest_args))
    except E2EError as exc:
        print(f"e2e: setup failed: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        code = 130
    finally:
        if code != 0:
            dump_diagnostics(cluster)
        if args.keep_cluster:
            print(f"e2e: kept kind cluster {cluster.name!r}; kubeconfig {cluster.kubeconfig}")
            print(f"e2e: delete it with: kind delete cluster --name {cluster.name}")
        else:
            try:
                cluster.delete()
            except E2EError as exc:
                print(f"e2e: could not delete the cluster: {exc}", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
