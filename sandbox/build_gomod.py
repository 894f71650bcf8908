"""Build a current Kubernetes control plane (and etcd) from Go modules.

``k8s.io/kubernetes`` is published as a Go module whose ``go.mod`` points every
``k8s.io/*`` staging module at ``./staging/src/...``; those ``replace`` directives only
work inside the kubernetes repository. So the build writes a small **wrapper module**
that requires ``k8s.io/kubernetes`` at ``KUBERNETES_VERSION`` and pins each staging module
to the matching ``v0.<minor>.<patch>`` release with its own replace directives (the list
is read from the kubernetes ``go.mod`` itself, so a new staging module is never missed),
then ``go build``s ``kube-apiserver``, ``kube-controller-manager`` and ``kubectl`` from
it. etcd is built the same way from ``go.etcd.io/etcd/server/v3`` at ``ETCD_VERSION``.

Everything comes through the Go module proxy as configured on the machine (``GOPROXY``
is inherited, never set here). The module cache and the build cache live under the
deployctl cache directory and are kept, so a rebuild compiles nothing that did not
change. The toolchain is a Go new enough for the kubernetes ``go.mod``: ``$DEPLOYCTL_GO``,
else ``go`` on PATH, else ``/usr/local/go/bin/go``; ``GOTOOLCHAIN=local`` keeps the
build on that toolchain instead of downloading another one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sandbox.buildsteps import BuildError, Progress, command_output, run_logged

# The newest v1.37.x patch release the Go module proxy serves. Bump it to take a patch.
KUBERNETES_VERSION = "v1.37.2"
# etcd for that release: 3.6, the series kubernetes 1.37 is tested with.
ETCD_VERSION = "v3.6.17"

KUBERNETES_MODULE = "k8s.io/kubernetes"
ETCD_MODULE = "go.etcd.io/etcd/server/v3"
# Binary name -> the main package that builds it.
KUBERNETES_COMMANDS: Mapping[str, str] = {
    "kube-apiserver": f"{KUBERNETES_MODULE}/cmd/kube-apiserver",
    "kube-controller-manager": f"{KUBERNETES_MODULE}/cmd/kube-controller-manager",
    "kubectl": f"{KUBERNETES_MODULE}/cmd/kubectl",
}
ETCD_COMMAND = ("etcd", ETCD_MODULE)
# The oldest Go that builds KUBERNETES_VERSION (its go.mod says `go 1.26.0`).
MIN_GO = (1, 26)
DEFAULT_GO_PATHS: tuple[str, ...] = ("/usr/local/go/bin/go",)
GO_ENV = "DEPLOYCTL_GO"
DOWNLOAD_TIMEOUT_SECONDS = 600
# The settings of the machine's Go that say where modules come from; all else is ours.
_INHERITED_GO_SETTINGS = ("GOPROXY", "GOSUMDB", "GONOSUMDB", "GONOPROXY", "GOPRIVATE", "GOINSECURE")
_STAGING_REPLACE = re.compile(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", re.MULTILINE)
_GO_DIRECTIVE = re.compile(r"^go\s+(\d+\.\d+(?:\.\d+)?)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class GoToolchain:
    """The ``go`` command the build runs and the environment it runs in."""

    go: Path
    version: str  # e.g. go1.26.8
    env: Mapping[str, str]
    proxy: str  # `go env GOPROXY`: where modules come from


def staging_version(kubernetes_version: str) -> str:
    """The staging modules' tag for a kubernetes tag: v1.37.2 -> v0.37.2.

    >>> staging_version("v1.37.2")
    'v0.37.2'
    """
    major, _, rest = kubernetes_version.removeprefix("v").partition(".")
    if major != "1" or not rest:
        raise ValueError(f"not a kubernetes release tag: {kubernetes_version!r}")
    return f"v0.{rest}"


def _version_tuple(go_version: str) -> tuple[int, ...]:
    numbers = re.findall(r"\d+", go_version.removeprefix("go").split("-")[0])
    return tuple(int(n) for n in numbers[:3])


def _go_candidates() -> list[Path]:
    named = os.environ.get(GO_ENV)
    if named:
        return [Path(named)]
    found = [shutil.which("go")] + [p for p in DEFAULT_GO_PATHS if Path(p).is_file()]
    unique: list[Path] = []
    for candidate in found:
        if candidate and Path(candidate) not in unique:
            unique.append(Path(candidate))
    return unique


def go_environment(cache: Path) -> dict[str, str]:
    """GO* variables for the build: our caches, no cgo, this toolchain only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
    env.update({k: os.environ[k] for k in _INHERITED_GO_SETTINGS if k in os.environ})
    env.update(
        GOMODCACHE=str(cache / "mod"),
        GOCACHE=str(cache / "build-cache"),
        GOPATH=str(cache / "path"),
        GOTOOLCHAIN="local",
        GOFLAGS="-buildvcs=false",
        CGO_ENABLED="0",
    )
    return env


def find_go(cache: Path) -> GoToolchain:
    """The first Go that is at least MIN_GO; BuildError naming what was found otherwise."""
    env = go_environment(cache)
    seen: list[str] = []
    for candidate in _go_candidates():
        version = command_output([str(candidate), "env", "GOVERSION"], env=env)
        if not version:
            seen.append(f"{candidate} (does not run)")
            continue
        if _version_tuple(version) >= MIN_GO:
            proxy = command_output([str(candidate), "env", "GOPROXY"], env=env)
            return GoToolchain(go=candidate, version=version, env=env, proxy=proxy)
        seen.append(f"{candidate} ({version})")
    wanted = ".".join(map(str, MIN_GO))
    raise BuildError(
        f"kubernetes {KUBERNETES_VERSION} needs Go {wanted} or newer; found "
        f"{', '.join(seen) or 'no go at all'}. Install Go from https://go.dev/dl/ "
        f"(e.g. into /usr/local/go) or point ${GO_ENV} at a go binary."
    )


def _download_json(toolchain: GoToolchain, module: str, *, work: Path, log: Path) -> dict[str, str]:
    """``go mod download -json module@version`` outside any module; its JSON answer."""
    work.mkdir(parents=True, exist_ok=True)
    cmd = [str(toolchain.go), "mod", "download", "-json", module]
    try:
        done = subprocess.run(
            cmd,
            cwd=work,
            env=dict(toolchain.env),
            capture_output=True,
            text=True,
            check=False,
            timeout=DOWNLOAD_TIMEOUT_SECONDS,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildError(f"`{' '.join(cmd)}` did not finish: {exc}") from exc
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as sink:
        sink.write(f"\n$ {' '.join(cmd)}\n{done.stdout}{done.stderr}")
    try:
        data: dict[str, str] = json.loads(done.stdout)
    except ValueError:
        data = {}
    if done.returncode != 0 or data.get("Error") or not data:
        reason = data.get("Error") or done.stderr.strip() or f"exit code {done.returncode}"
        raise BuildError(
            f"could not download {module} through the Go module proxy "
            f"(GOPROXY={toolchain.proxy}): {reason}\nLog: {log}"
        )
    return data


def wrapper_go_mod(
    *,
    name: str,
    go_directive: str,
    requires: Sequence[tuple[str, str]],
    replaces: Sequence[tuple[str, str]] = (),
    tools: Sequence[str] = (),
) -> str:
    """The text of a wrapper module's go.mod."""
    lines = [
        "// Generated by sandbox/build_gomod.py: a wrapper to build upstream commands.",
        f"module {name}",
        "",
        f"go {go_directive}",
        "",
        "require (",
        *(f"\t{module} {version}" for module, version in requires),
        ")",
    ]
    if replaces:
        lines += ["", "replace (", *(f"\t{m} => {m} {v}" for m, v in replaces), ")"]
    if tools:
        lines += ["", "tool (", *(f"\t{tool}" for tool in tools), ")"]
    return "\n".join(lines) + "\n"


def kubernetes_wrapper(kubernetes_go_mod: str, version: str) -> str:
    """The wrapper go.mod for ``k8s.io/kubernetes@version``, from its own go.mod text."""
    staging = sorted(set(_STAGING_REPLACE.findall(kubernetes_go_mod)))
    if not staging:
        raise BuildError(f"{KUBERNETES_MODULE} {version}: its go.mod names no staging modules")
    directive = _GO_DIRECTIVE.search(kubernetes_go_mod)
    pinned = staging_version(version)
    return wrapper_go_mod(
        name="deployctl.invalid/sandbox/kubernetes",
        go_directive=directive.group(1) if directive else ".".join(map(str, MIN_GO)),
        requires=[(KUBERNETES_MODULE, version)],
        replaces=[(module, pinned) for module in staging],
        tools=list(KUBERNETES_COMMANDS.values()),
    )


def version_ldflags(version: str, build_date: str) -> str:
    """-X flags for ``--version`` output, as upstream's hack/lib/version.sh sets them."""
    major, minor = version.removeprefix("v").split(".")[:2]
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        for key, value in (
            ("gitVersion", version),
            ("gitMajor", major),
            ("gitMinor", minor),
            ("gitTreeState", "clean"),
            ("buildDate", build_date),
        ):
            flags.append(f"-X {package}.{key}={value}")
    return " ".join(flags)


def prepare_kubernetes_module(
    toolchain: GoToolchain, work: Path, *, progress: Progress, logs: Path
) -> tuple[Path, str]:
    """Write and resolve the kubernetes wrapper module; return (its dir, the release date)."""
    log = logs / "modules-kubernetes.log"
    info = _download_json(
        toolchain, f"{KUBERNETES_MODULE}@{KUBERNETES_VERSION}", work=work, log=log
    )
    go_mod = Path(info.get("GoMod", ""))
    if not go_mod.is_file():
        raise BuildError(f"go mod download gave no go.mod for {KUBERNETES_MODULE}: {info}")
    module_dir = work / "kubernetes-module"
    _write_module(module_dir, kubernetes_wrapper(go_mod.read_text(), KUBERNETES_VERSION))
    run_logged(
        "go mod tidy (kubernetes wrapper)",
        [str(toolchain.go), "mod", "tidy"],
        log=log,
        progress=progress,
        cwd=module_dir,
        env=toolchain.env,
    )
    progress.say(
        f"    {KUBERNETES_MODULE} {KUBERNETES_VERSION}, staging modules pinned to "
        f"{staging_version(KUBERNETES_VERSION)} ({module_dir / 'go.mod'})"
    )
    return module_dir, info.get("Time", "")


def prepare_etcd_module(
    toolchain: GoToolchain, work: Path, *, progress: Progress, logs: Path
) -> Path:
    """Write and resolve the etcd wrapper module; return its directory."""
    module_dir = work / "etcd-module"
    _write_module(
        module_dir,
        wrapper_go_mod(
            name="deployctl.invalid/sandbox/etcd",
            go_directive=".".join(map(str, MIN_GO)),
            requires=[(ETCD_MODULE, ETCD_VERSION)],
            tools=[ETCD_MODULE],
        ),
    )
    run_logged(
        "go mod tidy (etcd wrapper)",
        [str(toolchain.go), "mod", "tidy"],
        log=logs / "modules-etcd.log",
        progress=progress,
        cwd=module_dir,
        env=toolchain.env,
    )
    return module_dir


def _write_module(directory: Path, go_mod: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    # go.sum is derived: starting without it lets `go mod tidy` write exactly what is needed.
    (directory / "go.sum").unlink(missing_ok=True)
    (directory / "go.mod").write_text(go_mod)


def go_build(
    toolchain: GoToolchain,
    module_dir: Path,
    name: str,
    package: str,
    *,
    ldflags: str,
    progress: Progress,
    logs: Path,
) -> Path:
    """``go build -trimpath`` one command of the wrapper module; return the binary."""
    output = module_dir / "bin" / name
    output.parent.mkdir(parents=True, exist_ok=True)
    output.unlink(missing_ok=True)
    run_logged(
        f"go build {package}",
        # -v: the packages as they compile, so the heartbeat line shows progress.
        [
            str(toolchain.go),
            "build",
            "-v",
            "-trimpath",
            "-ldflags",
            ldflags,
            "-o",
            str(output),
            package,
        ],
        log=logs / f"build-{name}.log",
        progress=progress,
        cwd=module_dir,
        env=toolchain.env,
    )
    if not output.is_file():
        raise BuildError(f"go build succeeded but {output} does not exist")
    return output
