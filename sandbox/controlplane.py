"""Start and stop a real Kubernetes control plane (etcd + kube-apiserver + controller-manager).

The binaries come from ``sandbox.build`` (``make cluster``): Kubernetes 1.37 by default,
1.20 with ``ControlPlane(version="1.20")`` or ``$DEPLOYCTL_KUBERNETES=1.20``. ``ControlPlane``
runs them on free loopback ports in a temporary directory with TLS, bearer-token auth,
RBAC (and, on 1.37, Pod Security Admission and TokenRequest-only ServiceAccount tokens)
and a short etcd compaction interval (so that 410 Gone is reachable), writes a kubeconfig
and hands out ``kubernetes.client.ApiClient`` objects. Used by the pytest plugin
``tests.fixtures_cluster``, by the demo and by anything that needs "a cluster" locally.

Every process it starts dies with it: each child gets ``PR_SET_PDEATHSIG(SIGKILL)``, and
``stop()`` runs on ``with`` exit, at interpreter exit and on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import yaml
from kubernetes import client as k8s

from sandbox.build import DEFAULT_KUBERNETES, BinariesMissing, Paths, find_binaries, minor_tuple

ADMIN_USER = "admin"
# Users without any group: RBAC denies them everything until a test grants something.
DEFAULT_EXTRA_USERS: Mapping[str, tuple[str, ...]] = {"alice": (), "bob": ()}
CONTEXT_NAME = "sandbox"
# The controller-manager's own identity: RBAC bootstraps a ClusterRole for this user name.
KCM_USER = "system:kube-controller-manager"
# v1 Endpoints reject loopback addresses, and our pods live on 127.x.y.z.
DEFAULT_CONTROLLERS = "*,-endpoint,-endpointslice,-endpointslicemirroring"
# Releases from 1.24 on dropped the insecure ports and stopped creating a token Secret per
# ServiceAccount (tokens come from the TokenRequest API); from 1.25 Pod Security
# Admission is on.
TOKEN_REQUEST_ONLY = (1, 24)
POD_SECURITY = (1, 25)
SERVICE_CIDR = "10.0.0.0/24"
_PR_SET_PDEATHSIG = 1
# Temporary workdirs are named <prefix><owner pid>-<random> so stale ones can be swept.
WORKDIR_PREFIX = "deployctl-sandbox-"
LOG_TAIL_LINES = 30


class ControlPlaneError(RuntimeError):
    """A component failed to start or the control plane did not become ready."""


@dataclass(frozen=True)
class Pki:
    """Files of the sandbox's throwaway certificate authority and keys."""

    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    sa_key: Path
    sa_pub: Path


@dataclass(frozen=True)
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int


@dataclass(frozen=True)
class _Component:
    name: str
    process: subprocess.Popen[bytes]
    log: Path


# Starts on fresh ports after a component found its port taken (see ControlPlane.start).
PORT_ATTEMPTS = 3


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_workdirs(base: Path | None = None) -> list[Path]:
    """Remove temporary workdirs whose owning process is gone; return what was removed.

    A SIGKILLed owner cannot clean up after itself (its components die with it, but the
    etcd data stays on disk), so each new control plane tidies up after dead ones.
    """
    removed = []
    for candidate in (base or Path(tempfile.gettempdir())).glob(f"{WORKDIR_PREFIX}*-*"):
        owner = candidate.name.removeprefix(WORKDIR_PREFIX).split("-", 1)[0]
        if owner.isdigit() and not _pid_alive(int(owner)) and candidate.is_dir():
            shutil.rmtree(candidate, ignore_errors=True)
            removed.append(candidate)
    return removed


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """preexec_fn: SIGKILL the child when the process that started it goes away."""

    def preexec() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # The parent may have died between fork and prctl; then nobody would ever signal us.
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


def log_tail(log: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _openssl(args: Sequence[str], *, cwd: Path) -> None:
    result = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ControlPlaneError(f"openssl {' '.join(args[:2])} failed:\n{result.stderr}")


def issue_serving_cert(
    pki: Pki, directory: Path, *, name: str, ip_addresses: Sequence[str] = ("127.0.0.1",)
) -> tuple[Path, Path]:
    """Issue a serving certificate signed by the sandbox CA; return (cert, key)."""
    key, csr, cert = (directory / f"{name}.{ext}" for ext in ("key", "csr", "crt"))
    extensions = directory / f"{name}.ext"
    alt_names = [f"IP:{ip}" for ip in ip_addresses] + [
        "DNS:localhost",
        "DNS:kubernetes",
        "DNS:kubernetes.default",
        "DNS:kubernetes.default.svc",
        "DNS:kubernetes.default.svc.cluster.local",
    ]
    extensions.write_text(
        "basicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        f"subjectAltName={','.join(alt_names)}\n"
    )
    _openssl(
        ["req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key.name]
        + ["-out", csr.name, "-subj", f"/CN={name}"],
        cwd=directory,
    )
    _openssl(
        ["x509", "-req", "-in", csr.name, "-CA", str(pki.ca_cert), "-CAkey", str(pki.ca_key)]
        + ["-CAcreateserial", "-out", cert.name, "-days", "365", "-extfile", extensions.name],
        cwd=directory,
    )
    return cert, key


def create_pki(directory: Path) -> Pki:
    """A self-signed CA, a serving cert for 127.0.0.1 and a service-account key pair.

    Reused when ``directory`` already holds them, so a restarted control plane keeps
    accepting the kubeconfigs and tokens it handed out before.
    """
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(
        ca_cert=directory / "ca.crt",
        ca_key=directory / "ca.key",
        serving_cert=directory / "apiserver.crt",
        serving_key=directory / "apiserver.key",
        sa_key=directory / "sa.key",
        sa_pub=directory / "sa.pub",
    )
    if all(Path(p).exists() for p in vars(pki).values()):
        return pki
    _openssl(
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", pki.ca_key.name]
        + ["-out", pki.ca_cert.name, "-days", "3650", "-subj", "/CN=deployctl-sandbox-ca"]
        + ["-addext", "basicConstraints=critical,CA:TRUE"]
        + ["-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"],
        cwd=directory,
    )
    issue_serving_cert(pki, directory, name="apiserver", ip_addresses=("127.0.0.1", "10.0.0.1"))
    _openssl(["genrsa", "-out", pki.sa_key.name, "2048"], cwd=directory)
    _openssl(["rsa", "-in", pki.sa_key.name, "-pubout", "-out", pki.sa_pub.name], cwd=directory)
    return pki


def write_kubeconfig(
    path: Path, *, server: str, token: str, ca_file: Path | None, user: str = ADMIN_USER
) -> Path:
    """A kubeconfig with one context named ``sandbox``."""
    cluster: dict[str, Any] = {"server": server}
    if ca_file is not None:
        cluster["certificate-authority"] = str(ca_file)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT_NAME, "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": CONTEXT_NAME, "context": {"cluster": CONTEXT_NAME, "user": user}}],
        "current-context": CONTEXT_NAME,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


def make_api_client(*, server: str, token: str, ca_file: Path | None) -> k8s.ApiClient:
    """An ApiClient for ``server`` authenticating with a bearer token."""
    configuration = k8s.Configuration()
    configuration.host = server
    if ca_file is not None:
        configuration.ssl_ca_cert = str(ca_file)
    configuration.api_key = {"authorization": token}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    return k8s.ApiClient(configuration)


# Live control planes, stopped by the atexit hook and the signal handlers. Re-entrant
# locks: a signal handler runs on the main thread, possibly while it holds them.
_LIVE: set[ControlPlane] = set()
_LIVE_LOCK = threading.RLock()
_HANDLERS_INSTALLED = False


def _stop_all() -> None:
    with _LIVE_LOCK:
        planes = list(_LIVE)
    for plane in planes:
        plane.stop()


def _install_exit_hooks() -> None:
    """atexit plus SIGINT/SIGTERM handlers that stop every live control plane first.

    The previous handler runs afterwards, so Ctrl-C still raises KeyboardInterrupt and a
    plain SIGTERM still ends the process.
    """
    global _HANDLERS_INSTALLED
    if _HANDLERS_INSTALLED:
        return
    _HANDLERS_INSTALLED = True
    atexit.register(_stop_all)
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread; atexit still works
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(signum)
        if previous == signal.SIG_IGN:
            continue  # whoever ignores it (e.g. `cmd &` in a script) keeps ignoring it

        def handler(
            received: int,
            frame: FrameType | None,
            previous: Callable[[int, FrameType | None], Any] | int | None = previous,
        ) -> None:
            _stop_all()
            if callable(previous):
                previous(received, frame)
            else:
                signal.signal(received, signal.SIG_DFL)
                os.kill(os.getpid(), received)

        signal.signal(signum, handler)


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager on loopback, started on demand.

    Start it from the main thread or a thread that outlives it: the kernel's parent-death
    signal fires when the *thread* that spawned a component exits.

    ``watch_cache``: ``False`` (default) turns the apiserver's watch cache off so a watch
    from a compacted resourceVersion gets a real 410 Gone; ``True`` keeps the defaults; a
    mapping such as ``{"configmaps": 0}`` sets per-resource sizes (``--watch-cache-sizes``),
    0 disabling the cache for that resource only. ``extra_controller_manager_args`` are
    appended to kube-controller-manager's flags (the scale bench raises its client's
    ``--kube-api-qps``: at the default 20 it, not deployctl, paces 10,000 ReplicaSets).
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        etcd_compaction_interval: str = "10s",
        watch_cache: bool | Mapping[str, int] = False,
        controllers: str = DEFAULT_CONTROLLERS,
        extra_users: Mapping[str, Sequence[str]] | None = None,
        extra_apiserver_args: Sequence[str] = (),
        extra_controller_manager_args: Sequence[str] = (),
        start_timeout: float = 60.0,
        stop_timeout: float = 10.0,
        binaries: Paths | None = None,
        version: str | None = None,
    ) -> None:
        if binaries is not None and version is not None:
            if minor_tuple(binaries.version) != minor_tuple(version):
                raise ControlPlaneError(
                    f"binaries are Kubernetes {binaries.version}, but version {version} was asked"
                )
        self.version = version
        self._requested_workdir = workdir
        self.etcd_compaction_interval = etcd_compaction_interval
        self.watch_cache = watch_cache
        self.controllers = controllers
        self.extra_users: Mapping[str, tuple[str, ...]] = {
            name: tuple(groups)
            for name, groups in (
                DEFAULT_EXTRA_USERS if extra_users is None else extra_users
            ).items()
        }
        self.extra_apiserver_args = tuple(extra_apiserver_args)
        self.extra_controller_manager_args = tuple(extra_controller_manager_args)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._binaries = binaries
        self._components: list[_Component] = []
        self._lock = threading.RLock()
        self._owns_workdir = False
        self._workdir: Path | None = None
        self._pki: Pki | None = None
        self._ports: Ports | None = None
        self.tokens: dict[str, str] = {}
        self.startup_seconds: float | None = None

    # ------------------------------------------------------------------ properties

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise ControlPlaneError("control plane not started")
        return self._workdir

    @property
    def server(self) -> str:
        if self._ports is None:
            raise ControlPlaneError("control plane not started")
        return f"https://127.0.0.1:{self._ports.apiserver}"

    @property
    def etcd_url(self) -> str:
        if self._ports is None:
            raise ControlPlaneError("control plane not started")
        return f"http://127.0.0.1:{self._ports.etcd_client}"

    @property
    def token(self) -> str:
        """The admin bearer token (group system:masters)."""
        return self.tokens[ADMIN_USER]

    @property
    def ca_file(self) -> Path:
        return self.pki.ca_cert

    @property
    def pki(self) -> Pki:
        if self._pki is None:
            raise ControlPlaneError("control plane not started")
        return self._pki

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def running(self) -> bool:
        return bool(self._components) and all(c.process.poll() is None for c in self._components)

    @property
    def binaries(self) -> Paths:
        """What this control plane runs: found (``version``, else the default) on start."""
        if self._binaries is None:
            self._binaries = find_binaries(self.version)
        return self._binaries

    @property
    def kubernetes_version(self) -> str:
        """The apiserver's version, e.g. ``v1.37.2``."""
        return self.binaries.version

    @property
    def minor(self) -> tuple[int, int]:
        """(1, 37) for v1.37.2: what tests and callers branch on."""
        return self.binaries.minor

    @property
    def kubectl(self) -> Path | None:
        """A kubectl for this cluster: the one built with it, else a newer build's, else PATH."""
        if self.binaries.kubectl is not None:
            return self.binaries.kubectl
        with contextlib.suppress(BinariesMissing):
            newer = find_binaries(DEFAULT_KUBERNETES)
            if newer.kubectl is not None:
                return newer.kubectl
        found = shutil.which("kubectl")
        return Path(found) if found else None

    def pids(self) -> dict[str, int]:
        """Process ids of the components this instance started, by component name."""
        return {c.name: c.process.pid for c in self._components}

    def api_client(self, user: str = ADMIN_USER) -> k8s.ApiClient:
        """A new ApiClient talking to the apiserver directly as ``user``."""
        return make_api_client(server=self.server, token=self.tokens[user], ca_file=self.ca_file)

    def user_kubeconfig(self, user: str, path: Path) -> Path:
        return write_kubeconfig(
            path, server=self.server, token=self.tokens[user], ca_file=self.ca_file, user=user
        )

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> ControlPlane:
        """Start all components and wait until pods can be created; idempotent when running."""
        with self._lock:
            if self._components:
                return self
            began = time.monotonic()
            binaries = self.binaries
            _install_exit_hooks()
            for attempt in range(1, PORT_ATTEMPTS + 1):
                self._prepare_workdir()
                with _LIVE_LOCK:
                    _LIVE.add(self)
                try:
                    self._start_components(binaries, deadline=began + self.start_timeout)
                    break
                except ControlPlaneError as exc:
                    self._stop_locked()
                    # A port found free can be taken before our component binds it (by
                    # another process's outgoing connection): start again on new ports.
                    if "address already in use" not in str(exc) or attempt == PORT_ATTEMPTS:
                        raise
                    if self._workdir is not None:  # a workdir we were given is reused
                        shutil.rmtree(self._workdir / "etcd", ignore_errors=True)
                except BaseException:
                    self._stop_locked()
                    raise
            self.startup_seconds = time.monotonic() - began
            return self

    def stop(self) -> None:
        """Stop exactly the processes this instance started (TERM, then KILL)."""
        with self._lock:
            self._stop_locked()

    def _prepare_workdir(self) -> None:
        if self._requested_workdir is None:
            sweep_stale_workdirs()
            self._workdir = Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-"))
            self._owns_workdir = True
        else:
            self._workdir = self._requested_workdir.resolve()
            self._workdir.mkdir(parents=True, exist_ok=True)
        (self._workdir / "logs").mkdir(exist_ok=True)
        self._pki = create_pki(self._workdir / "pki")
        self.tokens = self._load_or_create_tokens(self._workdir / "tokens.csv")
        self._ports = Ports(etcd_client=free_port(), etcd_peer=free_port(), apiserver=free_port())

    def _load_or_create_tokens(self, path: Path) -> dict[str, str]:
        tokens: dict[str, str] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                token, user, *_ = line.split(",")
                tokens[user] = token
        users: dict[str, tuple[str, ...]] = {
            ADMIN_USER: ("system:masters",),
            KCM_USER: (),
            **self.extra_users,
        }
        lines = []
        for user, groups in users.items():
            token = tokens.setdefault(user, secrets.token_hex(24))
            group_field = f',"{",".join(groups)}"' if groups else ""
            lines.append(f"{token},{user},uid-{user}{group_field}")
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)
        return tokens

    def _spawn(self, name: str, argv: Sequence[str]) -> _Component:
        log = self.workdir / "logs" / f"{name}.log"
        with log.open("ab") as sink:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                # Own session: a terminal's Ctrl-C reaches only us, and we stop the
                # components in order instead of all of them dying at once.
                start_new_session=True,
                preexec_fn=_die_with_parent(os.getpid()),
            )
        component = _Component(name=name, process=process, log=log)
        self._components.append(component)
        return component

    def _start_components(self, binaries: Paths, *, deadline: float) -> None:
        ports = self._ports
        pki = self.pki
        assert ports is not None
        etcd = self._spawn(
            "etcd",
            [
                str(binaries.etcd),
                "--name=sandbox",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{ports.etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{ports.etcd_peer}",
                f"--initial-cluster=sandbox=http://127.0.0.1:{ports.etcd_peer}",
                "--logger=zap",
                "--log-level=warn",
            ],
        )
        self._wait_http(etcd, f"{self.etcd_url}/health", deadline=deadline, context=None)
        apiserver = self._spawn(
            "kube-apiserver", [str(binaries.apiserver), *self._apiserver_args()]
        )
        ssl_context = ssl.create_default_context(cafile=str(pki.ca_cert))
        self._wait_http(apiserver, f"{self.server}/readyz", deadline=deadline, context=ssl_context)
        kcm_kubeconfig = write_kubeconfig(
            self.workdir / "kube-controller-manager.kubeconfig",
            server=self.server,
            token=self.tokens[KCM_USER],
            ca_file=pki.ca_cert,
            user=KCM_USER,
        )
        write_kubeconfig(self.kubeconfig, server=self.server, token=self.token, ca_file=pki.ca_cert)
        # Started once the apiserver is ready. Measured: started alongside it, the whole
        # start took about 3 s longer (10.7 s against 7.5 s), not less.
        self._spawn(
            "kube-controller-manager",
            [
                str(binaries.controller_manager),
                f"--kubeconfig={kcm_kubeconfig}",
                f"--controllers={self.controllers}",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={pki.sa_key}",
                f"--root-ca-file={pki.ca_cert}",
                f"--cluster-signing-cert-file={pki.ca_cert}",
                f"--cluster-signing-key-file={pki.ca_key}",
                "--leader-elect=false",
                *(["--port=0"] if binaries.minor < TOKEN_REQUEST_ONLY else []),
                "--secure-port=0",
                "-v=1",
                *self.extra_controller_manager_args,
            ],
        )
        # The ServiceAccount admission plugin rejects pods until the namespace's default
        # ServiceAccount exists and, before 1.24, has its token Secret: "ready" means that.
        self._wait_http(
            apiserver,
            f"{self.server}/api/v1/namespaces/default/serviceaccounts/default",
            deadline=deadline,
            context=ssl_context,
            accept=_service_account_ready(binaries.minor),
        )

    def _apiserver_args(self) -> list[str]:
        pki = self.pki
        ports = self._ports
        assert ports is not None
        args = [
            f"--etcd-servers={self.etcd_url}",
            f"--etcd-compaction-interval={self.etcd_compaction_interval}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={ports.apiserver}",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--token-auth-file={self.workdir / 'tokens.csv'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            # v1 Endpoints for the `kubernetes` Service would hold 127.0.0.1: rejected.
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            "--profiling=false",
            "-v=1",
        ]
        minor = self.binaries.minor
        if minor < TOKEN_REQUEST_ONLY:
            args.append("--insecure-port=0")
        if minor >= POD_SECURITY:
            # On by default; named so that the sandbox says what it tests. Namespaces
            # choose their level with pod-security.kubernetes.io/enforce labels.
            args.append("--enable-admission-plugins=PodSecurity")
        if self.watch_cache is False:
            args.append("--watch-cache=false")
        elif isinstance(self.watch_cache, Mapping):
            sizes = ",".join(f"{res}#{size}" for res, size in self.watch_cache.items())
            args.append(f"--watch-cache-sizes={sizes}")
        return args + list(self.extra_apiserver_args)

    def _wait_http(
        self,
        component: _Component,
        url: str,
        *,
        deadline: float,
        context: ssl.SSLContext | None,
        accept: Callable[[bytes], bool] = lambda _body: True,
    ) -> None:
        """Poll ``url`` until it answers 200 and ``accept(body)``; fail fast if a component dies."""
        headers = {"Authorization": f"Bearer {self.token}"} if context is not None else {}
        last_error = "no answer yet"
        while True:
            for running in self._components:
                code = running.process.poll()
                if code is not None:
                    raise ControlPlaneError(
                        f"{running.name} exited with code {code} during startup.\n"
                        f"Last lines of {running.log}:\n{log_tail(running.log)}"
                    )
            try:
                request = urllib.request.Request(url, headers=headers)
                with urllib.request.urlopen(request, timeout=2, context=context) as response:
                    body = response.read()
                    if response.status == 200 and accept(body):
                        return
                    last_error = f"HTTP {response.status}"
            except urllib.error.HTTPError as exc:
                last_error = f"HTTP {exc.code}"
            except (OSError, ValueError) as exc:
                last_error = str(exc)
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"{url} not ready within {self.start_timeout:.0f} s ({last_error}).\n"
                    f"Last lines of {component.log}:\n{log_tail(component.log)}"
                )
            time.sleep(0.1)

    def _stop_locked(self) -> None:
        # Reverse start order: clients of etcd first, so nothing logs storms of errors.
        for component in reversed(self._components):
            _terminate(component.process, timeout=self.stop_timeout)
        self._components.clear()
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if self._owns_workdir and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._owns_workdir = False

    # ------------------------------------------------------------------ CRDs

    def install_crds(self, paths: Iterable[Path], *, timeout: float = 30.0) -> list[str]:
        """Create or update the CRDs in the YAML files and wait until they are Established."""
        api = k8s.ApiextensionsV1Api(self.api_client())
        names: list[str] = []
        for path in paths:
            for document in yaml.safe_load_all(Path(path).read_text()):
                if not document or document.get("kind") != "CustomResourceDefinition":
                    continue
                name = document["metadata"]["name"]
                try:
                    _create_or_replace_crd(api, name, document)
                except k8s.ApiException as exc:
                    raise ControlPlaneError(
                        f"{path}: the apiserver rejected CRD {name} "
                        f"({exc.status}): {_status_message(exc)}"
                    ) from exc
                names.append(name)
        deadline = time.monotonic() + timeout
        for name in names:
            while not _established(api.read_custom_resource_definition(name)):
                if time.monotonic() > deadline:
                    raise ControlPlaneError(f"CRD {name} not Established within {timeout} s")
                time.sleep(0.1)
        return names


def _service_account_ready(minor: tuple[int, int]) -> Callable[[bytes], bool]:
    if minor >= TOKEN_REQUEST_ONLY:
        return lambda _body: True
    return lambda body: bool(json.loads(body).get("secrets"))


def _create_or_replace_crd(api: Any, name: str, document: dict[str, Any]) -> None:
    try:
        api.create_custom_resource_definition(document)
    except k8s.ApiException as exc:
        if exc.status != 409:
            raise
        existing = api.read_custom_resource_definition(name)
        document["metadata"]["resourceVersion"] = existing.metadata.resource_version
        api.replace_custom_resource_definition(name, document)


def _status_message(exc: k8s.ApiException) -> str:
    try:
        return str(json.loads(exc.body or "")["message"])
    except (TypeError, ValueError, KeyError):
        return str(exc.reason)


def _established(crd: Any) -> bool:
    conditions = (crd.status and crd.status.conditions) or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


def _terminate(process: subprocess.Popen[bytes], *, timeout: float) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sandbox.controlplane``: run a control plane until Ctrl-C, for humans."""
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.controlplane",
        description="Start the sandbox control plane and keep it running until Ctrl-C.",
    )
    parser.add_argument(
        "--workdir", type=Path, help="keep state here (default: a temp dir removed on exit)"
    )
    parser.add_argument(
        "--kubernetes",
        metavar="VERSION",
        help="1.37 or 1.20; default $DEPLOYCTL_KUBERNETES, else 1.37",
    )
    args = parser.parse_args(argv)
    plane = ControlPlane(args.workdir, version=args.kubernetes)
    try:
        plane.start()
    except (ControlPlaneError, BinariesMissing) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    version = plane.kubernetes_version
    print(f"Kubernetes {version} ready in {plane.startup_seconds:.1f} s: {plane.server}")
    print(f"export KUBECONFIG={plane.kubeconfig}")
    if plane.kubectl is not None:
        print(f"kubectl: {plane.kubectl}")
    print("Ctrl-C stops etcd, kube-apiserver and kube-controller-manager.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        plane.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
