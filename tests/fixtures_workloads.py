"""Pytest plugin: the workloads half of the sandbox (registered in ``tests/conftest.py``).

Fixtures:

- ``file_sd_dir`` (session): the directory Prometheus discovers targets from; the node
  agent and ``demo_app`` write one JSON file per target into it.
- ``prometheus`` (session): the real Prometheus (``sandbox.prometheus``) scraping that
  directory every second. Tests using it are marked ``prometheus`` automatically.
- ``node_agent`` (session): ``sandbox.node_agent.NodeAgent`` on the ``control_plane`` from
  ``tests.fixtures_cluster``, running each pod as a real demo-app process. Started only
  when a test asks for it, so unit-only runs need no cluster. Its tests are marked
  ``cluster`` automatically.
- ``httproute_crd`` (session): installs the published Gateway API standard CRDs
  (GatewayClass, Gateway, HTTPRoute, ReferenceGrant); the HTTPRoute CRD's name. Skips
  on clusters older than those CRDs support (1.25, where CEL arrived).
- ``demo_app`` (factory): standalone demo-app processes on free loopback addresses,
  registered in file_sd with the given labels, stopped after the test.
- ``traffic`` (factory): started ``TrafficGenerator``s, stopped after the test.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sandbox.demo_app import DEFAULT_PORT, spawn_demo_app, wait_healthy
from sandbox.node_agent import LoopbackIPs, NodeAgent, write_file_sd
from sandbox.prometheus import PrometheusServer
from sandbox.traffic import (
    GATEWAY_API_CRDS,
    GATEWAY_API_MIN_KUBERNETES,
    HTTPROUTE_CRD_NAME,
    ISTIO_CRDS,
    TrafficGenerator,
)

# Standalone demo apps live in 127.2/16, apart from the node agent's pod IPs (127.1/16).
_STANDALONE_IPS = LoopbackIPs(block=2, port=DEFAULT_PORT, probe=True)

_PROMETHEUS_FIXTURES = {"prometheus"}
_CLUSTER_FIXTURES = {"node_agent", "traffic", "httproute_crd"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Marks follow the fixtures, so `-m "not cluster and not prometheus"` is always right
    # without every test author remembering the markers.
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & _PROMETHEUS_FIXTURES:
            item.add_marker(pytest.mark.prometheus)
        if names & _CLUSTER_FIXTURES:
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def file_sd_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("file_sd")


@pytest.fixture(scope="session")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, file_sd_dir: Path
) -> Iterator[PrometheusServer]:
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"), file_sd_dir=file_sd_dir)
    with server:
        yield server


@pytest.fixture(scope="session")
def node_agent(
    control_plane: Any, file_sd_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeAgent]:
    agent = NodeAgent(
        control_plane.api_client(),
        run_processes=True,
        file_sd_dir=file_sd_dir,
        log_dir=tmp_path_factory.mktemp("pod-logs"),
    )
    agent.start()
    assert agent.wait_synced(30), "node agent did not list pods within 30 s"
    try:
        yield agent
    finally:
        agent.stop()


@pytest.fixture(scope="session")
def httproute_crd(control_plane: Any) -> str:
    if control_plane.minor < GATEWAY_API_MIN_KUBERNETES:
        pytest.skip(
            f"the published Gateway API CRDs need Kubernetes 1.25+ (CEL validation); this "
            f'is {control_plane.kubernetes_version}, which also rejects their `default: ""`'
        )
    names = control_plane.install_crds(GATEWAY_API_CRDS)
    assert HTTPROUTE_CRD_NAME in names, names
    return HTTPROUTE_CRD_NAME


@pytest.fixture(scope="session")
def istio_crds(control_plane: Any) -> list[str]:
    """Istio's VirtualService and DestinationRule CRDs, as published (sandbox/crds/istio)."""
    return [str(name) for name in control_plane.install_crds(ISTIO_CRDS)]


@dataclass(frozen=True)
class DemoAppHandle:
    """A running standalone demo app."""

    host: str
    port: int
    pid: int
    labels: Mapping[str, str]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"


DemoAppFactory = Callable[..., DemoAppHandle]


@pytest.fixture
def demo_app(file_sd_dir: Path, tmp_path: Path) -> Iterator[DemoAppFactory]:
    started: list[tuple[subprocess.Popen[bytes], str, Path, Any]] = []

    def start(
        env: Mapping[str, str] | None = None, *, labels: Mapping[str, str] | None = None
    ) -> DemoAppHandle:
        host = _STANDALONE_IPS.allocate()
        log = (tmp_path / f"demo-app-{host}.log").open("ab")
        process = spawn_demo_app(host, DEFAULT_PORT, env=dict(env or {}), log=log)
        sd_file = file_sd_dir / f"standalone_{host}.json"
        started.append((process, host, sd_file, log))
        wait_healthy(f"http://{host}:{DEFAULT_PORT}", timeout=20, process=process)
        write_file_sd(sd_file, [f"{host}:{DEFAULT_PORT}"], dict(labels or {}))
        return DemoAppHandle(
            host=host, port=DEFAULT_PORT, pid=process.pid, labels=dict(labels or {})
        )

    yield start
    for process, host, sd_file, log in started:
        sd_file.unlink(missing_ok=True)
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()
        _STANDALONE_IPS.release(host)


TrafficFactory = Callable[..., TrafficGenerator]


@pytest.fixture
def traffic(kube_api: Any) -> Iterator[TrafficFactory]:
    generators: list[TrafficGenerator] = []

    def start(namespace: str, **options: Any) -> TrafficGenerator:
        generator = TrafficGenerator(kube_api, namespace=namespace, **options)
        generators.append(generator)
        return generator.start()

    yield start
    for generator in generators:
        generator.stop()
