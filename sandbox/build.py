"""Build and cache the real Kubernetes control planes the sandbox runs.

Two releases are supported, chosen with ``--kubernetes`` or ``$DEPLOYCTL_KUBERNETES``
(what ``make cluster KUBERNETES=...`` sets):

- **1.37** (the default, the newest we support): kube-apiserver, kube-controller-manager,
  kubectl and etcd 3.6 built with Go >= 1.26 from Go modules through the Go module proxy
  (``sandbox.build_gomod``);
- **1.20** (the oldest we support): kube-apiserver and kube-controller-manager built with
  Debian's Go 1.19 from Debian bookworm's ``kubernetes`` source package
  (``sandbox.build_debian``); etcd is Debian's ``etcd-server``.

``python -m sandbox.build`` (what ``make cluster`` runs) installs the Debian prerequisites
with apt when root, builds once and caches the binaries under
``${DEPLOYCTL_CACHE:-~/.cache/deployctl}/kubernetes-<version>/bin/`` with a
``manifest.json`` written last (its presence is what "built" means). A per-release file
lock serialises concurrent builds of the same release; a cached release is found without
waiting for anyone's lock.

``find_binaries()`` is how ``sandbox.controlplane`` (and so the test fixtures and the demo)
locates what this built.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from sandbox import build_debian, build_gomod
from sandbox.buildsteps import BuildError, Progress, run_logged, tail

__all__ = ["BinariesMissing", "BuildError", "Paths", "find_binaries", "build", "main"]

KUBERNETES_ENV = "DEPLOYCTL_KUBERNETES"
DEFAULT_KUBERNETES = "1.37"
OLDEST_KUBERNETES = "1.20"


@dataclass(frozen=True)
class Release:
    """A supported Kubernetes minor release and what its cached build must hold."""

    minor: str
    components: tuple[str, ...]
    packages: tuple[str, ...]  # Debian packages the build (or the sandbox) needs
    how: str  # one line for the user
    # A cached build made with another toolchain is not this release's build (v1.20 built
    # by a Go newer than 1.19 is not what we test as the oldest release).
    go_version_prefix: str = ""
    # The lock file's name; v1.20 keeps the one every earlier checkout takes, so that a
    # checkout from before versions and this one never build in build/ at the same time.
    lock_name: str = ""


RELEASES: Mapping[str, Release] = {
    "1.37": Release(
        minor="1.37",
        components=("kube-apiserver", "kube-controller-manager", "kubectl", "etcd"),
        packages=("openssl", "prometheus"),
        how=f"Go modules: k8s.io/kubernetes {build_gomod.KUBERNETES_VERSION}, "
        f"etcd {build_gomod.ETCD_VERSION}",
        lock_name=".build-1.37.lock",
    ),
    "1.20": Release(
        minor="1.20",
        components=("kube-apiserver", "kube-controller-manager"),
        packages=(
            "golang-go",
            "etcd-server",
            "rsync",
            "dpkg-dev",
            "openssl",
            "golang-github-modern-go-reflect2-dev",
            "golang-github-json-iterator-go-dev",
            "prometheus",
        ),
        how="Debian's kubernetes source package with Debian's Go 1.19",
        go_version_prefix="go1.19",
        lock_name=".build.lock",
    ),
}
# What the oldest release's cache must hold; kept for callers that predate versions.
COMPONENTS: tuple[str, ...] = RELEASES[OLDEST_KUBERNETES].components
MANIFEST_NAME = "manifest.json"


class BinariesMissing(RuntimeError):
    """The control-plane binaries have not been built (or the cache is damaged)."""


@dataclass(frozen=True)
class Paths:
    """Executables the sandbox control plane runs."""

    apiserver: Path
    controller_manager: Path
    etcd: Path
    version: str  # e.g. v1.37.2
    kubectl: Path | None = None  # built with the current releases only

    @property
    def minor(self) -> tuple[int, int]:
        """(1, 37) for v1.37.2."""
        return minor_tuple(self.version)


@dataclass(frozen=True)
class Manifest:
    """Written last by a successful build; its presence is what "cached" means.

    ``source`` is what tells this format apart: checkouts from before versions read
    manifests strictly, so they skip these directories instead of starting a 1.37
    apiserver with 1.20 flags while both share one cache.
    """

    debian_version: str
    kubernetes_version: str
    go_version: str
    built_at: str
    build_seconds: float
    binary_sizes: Mapping[str, int]
    source: str = ""
    step_seconds: Mapping[str, float] = field(default_factory=dict)
    etcd_version: str = ""


def minor_tuple(version: str) -> tuple[int, int]:
    """(1, 37) for "v1.37.2", "1.37" or "1.37.2"; ValueError for anything else."""
    parts = version.strip().removeprefix("v").split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        raise ValueError(f"not a Kubernetes version: {version!r}") from None


def selected_release(version: str | None = None) -> Release:
    """The release ``version`` names (default: ``$DEPLOYCTL_KUBERNETES``, else 1.37)."""
    wanted = version or os.environ.get(KUBERNETES_ENV) or DEFAULT_KUBERNETES
    supported = ", ".join(RELEASES)
    try:
        major, minor = minor_tuple(wanted)
    except ValueError:
        raise ValueError(f"unknown Kubernetes version {wanted!r}; supported: {supported}") from None
    release = RELEASES.get(f"{major}.{minor}")
    if release is None:
        raise ValueError(f"Kubernetes {wanted} is not supported by the sandbox; use {supported}")
    return release


def cache_root() -> Path:
    """Where builds are cached: ``$DEPLOYCTL_CACHE`` or ``~/.cache/deployctl``."""
    override = os.environ.get("DEPLOYCTL_CACHE")
    return Path(override).expanduser() if override else Path.home() / ".cache" / "deployctl"


def _read_manifest(directory: Path) -> Manifest | None:
    try:
        raw = json.loads((directory / MANIFEST_NAME).read_text())
        manifest = Manifest(**raw)
    except (OSError, ValueError, TypeError):
        return None
    # A size mismatch means an interrupted copy or a tampered cache: treat as not built.
    for name, size in manifest.binary_sizes.items():
        binary = directory / "bin" / name
        try:
            if binary.stat().st_size != size or not os.access(binary, os.X_OK):
                return None
        except OSError:
            return None
    return manifest


def _cached_build(root: Path, release: Release) -> tuple[Path, Manifest] | None:
    found: list[tuple[Path, Manifest]] = []
    for directory in root.glob("kubernetes-*"):
        manifest = _read_manifest(directory)
        if manifest is None or not set(manifest.binary_sizes) >= set(release.components):
            continue
        if not _go_version_of(manifest).startswith(release.go_version_prefix):
            continue
        try:
            built_minor = minor_tuple(manifest.kubernetes_version)
        except ValueError:
            continue
        if built_minor == minor_tuple(release.minor):
            found.append((directory, manifest))
    if not found:
        return None
    return max(found, key=lambda item: item[1].built_at)


def _go_version_of(manifest: Manifest) -> str:
    # Older manifests hold the whole `go version` line.
    return manifest.go_version.removeprefix("go version ").strip()


def _system_etcd() -> Path:
    etcd = shutil.which("etcd") or shutil.which("etcd", path="/usr/bin:/usr/sbin")
    if etcd is None:
        raise BinariesMissing(
            "etcd is not installed (Debian package etcd-server): run "
            "`make cluster KUBERNETES=1.20`, which installs it when run as root"
        )
    return Path(etcd)


def find_binaries(version: str | None = None) -> Paths:
    """Locate the cached control plane of ``version`` (default: ``$DEPLOYCTL_KUBERNETES``,
    else 1.37).

    Raises ``BinariesMissing`` naming the fix (``make cluster``) when anything is absent.
    """
    try:
        release = selected_release(version)
    except ValueError as exc:
        raise BinariesMissing(str(exc)) from None
    root = cache_root()
    cached = _cached_build(root, release)
    if cached is None:
        option = "" if release.minor == DEFAULT_KUBERNETES else f" KUBERNETES={release.minor}"
        raise BinariesMissing(
            f"the Kubernetes {release.minor} control plane ({', '.join(release.components)}) "
            f"is not built in {root}: run `make cluster{option}` "
            f"(or `python -m sandbox.build --kubernetes {release.minor}`) first"
        )
    directory, manifest = cached
    bin_dir = directory / "bin"
    return Paths(
        apiserver=bin_dir / "kube-apiserver",
        controller_manager=bin_dir / "kube-controller-manager",
        etcd=bin_dir / "etcd" if "etcd" in manifest.binary_sizes else _system_etcd(),
        version=manifest.kubernetes_version,
        kubectl=bin_dir / "kubectl" if "kubectl" in manifest.binary_sizes else None,
    )


# --------------------------------------------------------------------------- prerequisites


def _is_root() -> bool:
    return os.geteuid() == 0


def _os_release() -> dict[str, str]:
    values: dict[str, str] = {}
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return values
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip('"')
    return values


def _missing_packages(packages: Sequence[str]) -> list[str]:
    missing = []
    for package in packages:
        result = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", package],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 or "install ok installed" not in result.stdout:
            missing.append(package)
    return missing


def _apt_lists_empty() -> bool:
    lists = Path("/var/lib/apt/lists")
    return not any(lists.glob("*_Packages*"))


def check_prerequisites(release: Release, progress: Progress, *, logs: Path) -> None:
    """Debian with the release's packages installed; install them with apt when root."""
    os_release = _os_release()
    if os_release.get("ID") != "debian" or not shutil.which("dpkg-query"):
        raise BuildError(
            "the sandbox control plane is built and run with Debian's packages (openssl, "
            "prometheus, and for Kubernetes 1.20 the kubernetes source package) and "
            f"needs Debian (bookworm); this is {os_release.get('PRETTY_NAME', 'not Debian')}. "
            "Use `make e2e` (kind) elsewhere."
        )
    if os_release.get("VERSION_CODENAME") != "bookworm":
        progress.say(
            f"    warning: measured on Debian bookworm, this is {os_release.get('PRETTY_NAME')}"
        )
    missing = _missing_packages(release.packages)
    if not missing:
        progress.say(f"    all prerequisites installed ({' '.join(release.packages)})")
        return
    command = "apt-get install -y " + " ".join(missing)
    if not _is_root():
        raise BuildError(
            f"missing Debian packages: {', '.join(missing)}. Install them as root with:\n"
            f"    sudo {command}\n"
            "then run `make cluster` again."
        )
    progress.say(f"    installing {' '.join(missing)}")
    log = logs / "apt-install.log"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", *missing]
    update = ["apt-get", "update"]
    # Only refresh the package lists when they are absent or too stale to find a package:
    # an update costs time and network on every fresh machine otherwise.
    if _apt_lists_empty():
        run_logged("apt-get update", update, log=log, progress=progress, env=env)
    try:
        run_logged("apt-get install", install, log=log, progress=progress, env=env)
    except BuildError:
        last = tail(log, 60)
        if "Unable to locate package" not in last and "no installation candidate" not in last:
            raise
        run_logged("apt-get update", update, log=log, progress=progress, env=env)
        run_logged("apt-get install", install, log=log, progress=progress, env=env)
    still = _missing_packages(release.packages)
    if still:
        raise BuildError(f"apt-get reported success but {', '.join(still)} is still missing")


# --------------------------------------------------------------------------- install


def _kubernetes_version(binary: Path) -> str:
    result = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=False)
    return result.stdout.strip().removeprefix("Kubernetes ").strip() or "unknown"


def install_binaries(
    built: Mapping[str, Path],
    *,
    root: Path,
    debian_version: str,
    go_version: str,
    source: str,
    progress: Progress,
    etcd_version: str = "",
) -> Path:
    """Copy binaries into ``root/kubernetes-<version>/bin`` and write the manifest last.

    Every file lands by an atomic rename, the manifest after the binaries, so an
    interrupted install is never mistaken for a build.
    """
    version = _kubernetes_version(built["kube-apiserver"])
    try:
        minor_tuple(version)
    except ValueError:
        raise BuildError(
            f"the built kube-apiserver reports version {version!r}; not caching it"
        ) from None
    target = root / f"kubernetes-{version.removeprefix('v')}"
    bin_dir = target / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    # A rebuild into an existing directory: it is not "built" until the new manifest lands.
    (target / MANIFEST_NAME).unlink(missing_ok=True)
    sizes: dict[str, int] = {}
    for name, binary in built.items():
        partial = bin_dir / f".{name}.partial"
        shutil.copy2(binary, partial)
        partial.replace(bin_dir / name)
        sizes[name] = (bin_dir / name).stat().st_size
    manifest = Manifest(
        debian_version=debian_version,
        kubernetes_version=version,
        go_version=go_version,
        built_at=datetime.now(UTC).isoformat(timespec="seconds"),
        build_seconds=round(time.monotonic() - progress.started, 1),
        binary_sizes=sizes,
        source=source,
        step_seconds=dict(progress.timings),
        etcd_version=etcd_version,
    )
    partial_manifest = target / f".{MANIFEST_NAME}.partial"
    partial_manifest.write_text(json.dumps(asdict(manifest), indent=2) + "\n")
    partial_manifest.replace(target / MANIFEST_NAME)
    return target


@contextlib.contextmanager
def _build_lock(root: Path, release: Release, progress: Progress) -> Iterator[None]:
    """Serialise concurrent builds of one release (e.g. two terminals) on one cache."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / release.lock_name).open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress.say(f"    another build of Kubernetes {release.minor} is running; waiting")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


# --------------------------------------------------------------------------- the builds


def _build_debian(release: Release, root: Path, progress: Progress, *, keep_source: bool) -> Path:
    work = root / "build"
    logs = work / "logs"
    if logs.exists():
        shutil.rmtree(logs)
    with progress.step("check Debian's Go 1.19 (/usr/lib/go-1.19/bin/go)"):
        go_version = build_debian.check_go119()
        progress.say(f"    {build_debian.GO_119}: {go_version}")
    with progress.step("fetch Debian's kubernetes source package (private apt config)"):
        tree = build_debian.fetch_source(work, progress, logs=logs)
    with progress.step("replace vendored reflect2 and json-iterator (Go 1.19 fix)"):
        build_debian.replace_vendored(tree, progress, logs=logs)
    built: dict[str, Path] = {}
    env = build_debian.go119_env()
    for component in release.components:
        with progress.step(f"build {component} (upstream make, Go 1.19)"):
            built[component] = build_debian.build_component(
                tree, component, progress=progress, gocache=work / "gocache", logs=logs, env=env
            )
    with progress.step("install binaries into the cache"):
        target = install_binaries(
            built,
            root=root,
            debian_version=tree.name.removeprefix("kubernetes-"),
            go_version=go_version,
            source=release.how,
            progress=progress,
        )
        if not keep_source:
            # 300 MB of source plus generated files; the Go cache is kept for rebuilds.
            shutil.rmtree(tree)
        progress.say(f"    {target / 'bin'}")
    return target


def _build_gomod(release: Release, root: Path, progress: Progress) -> Path:
    version = build_gomod.KUBERNETES_VERSION
    work = root / "build" / f"kubernetes-{version}"
    logs = work / "logs"
    if logs.exists():
        shutil.rmtree(logs)
    with progress.step("find Go (>= 1.26) and the Go module proxy"):
        toolchain = build_gomod.find_go(root / "go")
        progress.say(f"    {toolchain.go}: {toolchain.version}, GOPROXY={toolchain.proxy}")
    with progress.step(f"resolve k8s.io/kubernetes {version} (wrapper module, staging pins)"):
        module, release_date = build_gomod.prepare_kubernetes_module(
            toolchain, work, progress=progress, logs=logs
        )
    ldflags = build_gomod.version_ldflags(version, release_date or "1970-01-01T00:00:00Z")
    built: dict[str, Path] = {}
    for name, package in build_gomod.KUBERNETES_COMMANDS.items():
        with progress.step(f"build {name} (go build)"):
            built[name] = build_gomod.go_build(
                toolchain, module, name, package, ldflags=ldflags, progress=progress, logs=logs
            )
    with progress.step(f"build etcd {build_gomod.ETCD_VERSION} (go.etcd.io/etcd/server/v3)"):
        etcd_module = build_gomod.prepare_etcd_module(toolchain, work, progress=progress, logs=logs)
        name, package = build_gomod.ETCD_COMMAND
        built[name] = build_gomod.go_build(
            toolchain, etcd_module, name, package, ldflags="-s -w", progress=progress, logs=logs
        )
    with progress.step("install binaries into the cache"):
        target = install_binaries(
            built,
            root=root,
            debian_version="",
            go_version=toolchain.version,
            source=release.how,
            progress=progress,
            etcd_version=build_gomod.ETCD_VERSION,
        )
        progress.say(f"    {target / 'bin'}")
    return target


def build(*, version: str | None = None, force: bool, keep_source: bool, out: TextIO) -> Path:
    """Run every step for one release; return the cache directory holding its binaries."""
    try:
        release = selected_release(version)
    except ValueError as exc:
        raise BuildError(str(exc)) from None
    root = cache_root()
    steps = 4 + len(release.components) + (1 if release.minor == OLDEST_KUBERNETES else 0)
    progress = Progress(steps, out)
    progress.say(f"Kubernetes {release.minor}: {release.how}")
    with progress.step("check Debian and prerequisites"):
        check_prerequisites(release, progress, logs=root / "build" / "logs")
    cached = None if force else _cached_build(root, release)
    if cached is None:
        with _build_lock(root, release, progress):
            # Someone else may have finished the build while we waited for the lock.
            cached = None if force else _cached_build(root, release)
            if cached is None:
                if release.minor == OLDEST_KUBERNETES:
                    return _build_debian(release, root, progress, keep_source=keep_source)
                return _build_gomod(release, root, progress)
    directory, manifest = cached
    progress.say(
        f"cached: kubernetes {manifest.kubernetes_version} "
        f"({manifest.source or 'Debian ' + manifest.debian_version}) in {directory / 'bin'}"
    )
    return directory


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.build",
        description="Build and cache the sandbox's Kubernetes control plane.",
    )
    parser.add_argument(
        "--kubernetes",
        metavar="VERSION",
        help=f"{' or '.join(RELEASES)}; default ${KUBERNETES_ENV}, else {DEFAULT_KUBERNETES}",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even when cached")
    parser.add_argument(
        "--keep-source",
        action="store_true",
        help="1.20: keep the unpacked source tree after building",
    )
    args = parser.parse_args(argv)
    began = time.monotonic()
    try:
        build(
            version=args.kubernetes, force=args.force, keep_source=args.keep_source, out=sys.stdout
        )
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        print(f"failed after {time.monotonic() - began:.1f} s", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(f"total: {time.monotonic() - began:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
