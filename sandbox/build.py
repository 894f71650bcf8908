"""Build and cache the real Kubernetes control plane used by the sandbox.

``python -m sandbox.build`` (what ``make cluster`` runs) installs the system prerequisites
with apt when root, fetches Debian's ``kubernetes`` source package through a private apt
configuration (the system's apt setup is never touched), swaps two vendored Go libraries
that crash under Go 1.19, builds ``kube-apiserver`` and ``kube-controller-manager`` with
upstream's ``make`` and caches the binaries under
``${DEPLOYCTL_CACHE:-~/.cache/deployctl}/kubernetes-<version>/bin/``.

``find_binaries()`` is how ``sandbox.controlplane`` (and so the test fixtures and the demo)
locates what this built, plus the system's ``etcd``.
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
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

# Debian packages the build and the sandbox need. Order is the order shown to users.
PREREQUISITES: tuple[str, ...] = (
    "golang-go",
    "etcd-server",
    "rsync",
    "dpkg-dev",
    "openssl",
    "golang-github-modern-go-reflect2-dev",
    "golang-github-json-iterator-go-dev",
    "prometheus",
)

# Vendored trees replaced by Debian's newer copies: reflect2 1.0.1 / json-iterator 1.1.10
# segfault in map iteration when compiled with Go 1.19.
VENDOR_REPLACEMENTS: tuple[tuple[str, str], ...] = (
    ("github.com/modern-go/reflect2", "/usr/share/gocode/src/github.com/modern-go/reflect2"),
    ("github.com/json-iterator/go", "/usr/share/gocode/src/github.com/json-iterator/go"),
)

COMPONENTS: tuple[str, ...] = ("kube-apiserver", "kube-controller-manager")
MANIFEST_NAME = "manifest.json"
LOG_TAIL_LINES = 25
# A long step prints a heartbeat so a 4-minute build never looks hung.
HEARTBEAT_SECONDS = 30.0


class BuildError(Exception):
    """A build step failed; the message is what the user sees."""


class BinariesMissing(RuntimeError):
    """The control-plane binaries have not been built (or the cache is damaged)."""


@dataclass(frozen=True)
class Paths:
    """Executables the sandbox control plane runs."""

    apiserver: Path
    controller_manager: Path
    etcd: Path
    version: str


@dataclass(frozen=True)
class Manifest:
    """Written last by a successful build; its presence is what "cached" means."""

    debian_version: str
    kubernetes_version: str
    go_version: str
    built_at: str
    build_seconds: float
    binary_sizes: Mapping[str, int]


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


def _cached_build(root: Path) -> tuple[Path, Manifest] | None:
    found: list[tuple[Path, Manifest]] = []
    for directory in root.glob("kubernetes-*"):
        manifest = _read_manifest(directory)
        if manifest is not None and set(manifest.binary_sizes) >= set(COMPONENTS):
            found.append((directory, manifest))
    if not found:
        return None
    return max(found, key=lambda item: item[1].built_at)


def find_binaries() -> Paths:
    """Locate the cached kube-apiserver and kube-controller-manager and the system etcd.

    Raises ``BinariesMissing`` naming the fix (``make cluster``) when anything is absent.
    """
    root = cache_root()
    cached = _cached_build(root)
    if cached is None:
        raise BinariesMissing(
            f"kube-apiserver and kube-controller-manager are not built in {root}: "
            "run `make cluster` (or `python -m sandbox.build`) first"
        )
    directory, manifest = cached
    etcd = shutil.which("etcd") or shutil.which("etcd", path="/usr/bin:/usr/sbin")
    if etcd is None:
        raise BinariesMissing(
            "etcd is not installed (Debian package etcd-server): run `make cluster`, "
            "which installs it when run as root"
        )
    return Paths(
        apiserver=directory / "bin" / "kube-apiserver",
        controller_manager=directory / "bin" / "kube-controller-manager",
        etcd=Path(etcd),
        version=manifest.kubernetes_version,
    )


# --------------------------------------------------------------------------- steps


class Progress:
    """Numbered step lines with elapsed times, and the total at the end."""

    def __init__(self, total_steps: int, out: TextIO) -> None:
        self._total_steps = total_steps
        self._index = 0
        self._out = out
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        print(text, file=self._out, flush=True)

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        self._index += 1
        self.say(f"==> [{self._index}/{self._total_steps}] {title}")
        began = time.monotonic()
        yield
        self.say(f"    done in {time.monotonic() - began:.1f} s")


def _tail(log: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:])


def _run_logged(
    step: str,
    cmd: Sequence[str],
    *,
    log: Path,
    progress: Progress,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    """Run ``cmd`` with its output appended to ``log``; raise BuildError on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    with log.open("a") as sink:
        sink.write(f"\n$ {' '.join(cmd)}\n")
        sink.flush()
        try:
            proc = subprocess.Popen(
                list(cmd),
                cwd=cwd,
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        except OSError as exc:
            raise BuildError(f"step '{step}' could not start {cmd[0]}: {exc}") from exc
        while True:
            try:
                code = proc.wait(timeout=HEARTBEAT_SECONDS)
                break
            except subprocess.TimeoutExpired:
                last = _tail(log, 1).strip()[:90]
                progress.say(f"    ... {time.monotonic() - began:.0f} s: {last}")
    if code != 0:
        raise BuildError(
            f"step '{step}' failed: {cmd[0]} exited with {code}.\n"
            f"Last lines of its log:\n{_tail(log)}\n"
            f"Full log: {log}"
        )


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


def _missing_packages() -> list[str]:
    missing = []
    for package in PREREQUISITES:
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


def check_prerequisites(progress: Progress, *, logs: Path) -> None:
    """Debian with the build tools installed; install them with apt when root."""
    release = _os_release()
    if release.get("ID") != "debian" or not shutil.which("dpkg-query"):
        raise BuildError(
            "the sandbox control plane is built from Debian's kubernetes source package and "
            f"needs Debian (bookworm); this is {release.get('PRETTY_NAME', 'not Debian')}. "
            "Use `make e2e` (kind) elsewhere."
        )
    if release.get("VERSION_CODENAME") != "bookworm":
        progress.say(
            f"    warning: measured on Debian bookworm, this is {release.get('PRETTY_NAME')}"
        )
    missing = _missing_packages()
    if not missing:
        progress.say("    all prerequisites installed")
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
        _run_logged("apt-get update", update, log=log, progress=progress, env=env)
    try:
        _run_logged("apt-get install", install, log=log, progress=progress, env=env)
    except BuildError:
        tail = _tail(log, 60)
        if "Unable to locate package" not in tail and "no installation candidate" not in tail:
            raise
        _run_logged("apt-get update", update, log=log, progress=progress, env=env)
        _run_logged("apt-get install", install, log=log, progress=progress, env=env)
    still = _missing_packages()
    if still:
        raise BuildError(f"apt-get reported success but {', '.join(still)} is still missing")


def _deb_src_sources(target: Path) -> None:
    """Write deb-src variants of the system's Debian sources into ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    for old in target.iterdir():
        old.unlink()
    written = 0
    for source in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        lines = source.read_text().splitlines()
        converted = [
            "Types: deb-src" if line.strip().startswith("Types:") else line for line in lines
        ]
        (target / source.name).write_text("\n".join(converted) + "\n")
        written += 1
    legacy = [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*.list")]
    for source in legacy:
        if not source.is_file():
            continue
        entries = [
            "deb-src " + line.strip()[4:]
            for line in source.read_text().splitlines()
            if line.strip().startswith("deb ")
        ]
        if entries:
            (target / f"{source.stem}-src.list").write_text("\n".join(entries) + "\n")
            written += 1
    if written == 0:
        raise BuildError("no apt sources found in /etc/apt to derive a deb-src entry from")


def fetch_source(work: Path, progress: Progress, *, logs: Path) -> Path:
    """Download and unpack Debian's kubernetes source package; return the tree."""
    apt_dir = work / "apt"
    for sub in ("sources.list.d", "lists/partial", "cache/archives/partial"):
        (apt_dir / sub).mkdir(parents=True, exist_ok=True)
    empty_list = apt_dir / "sources.list"
    empty_list.write_text("")
    _deb_src_sources(apt_dir / "sources.list.d")
    # Every path apt would read or write for sources is redirected into our directory,
    # so the system's lists and configuration stay exactly as they are.
    options = [
        "-o",
        f"Dir::Etc::SourceList={empty_list}",
        "-o",
        f"Dir::Etc::SourceParts={apt_dir / 'sources.list.d'}",
        "-o",
        f"Dir::State::Lists={apt_dir / 'lists'}",
        "-o",
        f"Dir::Cache={apt_dir / 'cache'}",
    ]
    if _is_root():
        # Downloads land in our cache dir, which the unprivileged _apt user cannot write.
        options += ["-o", "APT::Sandbox::User=root"]
    log = logs / "fetch-source.log"
    _run_logged(
        "apt-get update (deb-src)",
        ["apt-get", *options, "update"],
        log=log,
        progress=progress,
    )
    downloads = work / "src"
    downloads.mkdir(parents=True, exist_ok=True)
    for stale in downloads.glob("kubernetes-*"):
        if stale.is_dir():
            shutil.rmtree(stale)
    _run_logged(
        "apt-get source kubernetes",
        ["apt-get", *options, "source", "--download-only", "kubernetes"],
        log=log,
        progress=progress,
        cwd=downloads,
    )
    dscs = sorted(downloads.glob("kubernetes_*.dsc"), key=lambda p: p.stat().st_mtime)
    if not dscs:
        raise BuildError(f"apt-get source left no kubernetes .dsc in {downloads}; log: {log}")
    dsc = dscs[-1]
    debian_version = dsc.name.removeprefix("kubernetes_").removesuffix(".dsc")
    tree = downloads / f"kubernetes-{debian_version}"
    # Full extraction (with Debian's patches, which include security fixes).
    _run_logged(
        "dpkg-source -x",
        ["dpkg-source", "--no-check", "-x", dsc.name, tree.name],
        log=log,
        progress=progress,
        cwd=downloads,
    )
    progress.say(f"    kubernetes {debian_version} unpacked in {tree}")
    return tree


def replace_vendored(tree: Path, progress: Progress, *, logs: Path) -> None:
    """Swap the vendored reflect2/json-iterator for Debian's Go 1.19-safe copies."""
    for vendored, debian_copy in VENDOR_REPLACEMENTS:
        source = Path(debian_copy)
        if not source.is_dir():
            raise BuildError(
                f"{debian_copy} is missing: install golang-github-modern-go-reflect2-dev "
                "and golang-github-json-iterator-go-dev (`make cluster` as root does)"
            )
        target = tree / "vendor" / vendored
        _run_logged(
            f"replace vendor/{vendored}",
            ["rsync", "-a", "--delete", "--exclude", "*_test.go", f"{source}/", f"{target}/"],
            log=logs / "vendor.log",
            progress=progress,
        )
        progress.say(f"    vendor/{vendored} <- {debian_copy}")


def build_component(
    tree: Path, component: str, *, progress: Progress, gocache: Path, logs: Path
) -> Path:
    """Run upstream ``make WHAT=cmd/<component>``; return the built binary."""
    # hack/lib/golang.sh pins GOCACHE to _output/local/go/cache; pointing that at our
    # persistent cache makes a rebuild from a fresh tree take about a minute, not four.
    gocache.mkdir(parents=True, exist_ok=True)
    go_dir = tree / "_output" / "local" / "go"
    go_dir.mkdir(parents=True, exist_ok=True)
    link = go_dir / "cache"
    if not link.is_symlink():
        if link.exists():
            shutil.rmtree(link)
        link.symlink_to(gocache)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
    _run_logged(
        f"make WHAT=cmd/{component}",
        ["make", f"WHAT=cmd/{component}"],
        log=logs / f"build-{component}.log",
        progress=progress,
        cwd=tree,
        env=env,
    )
    binary = tree / "_output" / "bin" / component
    if not binary.is_file():
        raise BuildError(f"make succeeded but {binary} does not exist")
    return binary


def _go_version() -> str:
    result = subprocess.run(["go", "version"], capture_output=True, text=True, check=False)
    return result.stdout.strip()


def _kubernetes_version(binary: Path) -> str:
    result = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=False)
    return result.stdout.strip().removeprefix("Kubernetes ").strip() or "unknown"


def install_binaries(
    tree: Path, built: Mapping[str, Path], *, root: Path, build_seconds: float
) -> Path:
    """Copy binaries into the cache and write the manifest last (atomic rename)."""
    debian_version = tree.name.removeprefix("kubernetes-")
    target = root / f"kubernetes-{debian_version}"
    bin_dir = target / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    sizes: dict[str, int] = {}
    for name, source in built.items():
        partial = bin_dir / f".{name}.partial"
        shutil.copy2(source, partial)
        partial.replace(bin_dir / name)
        sizes[name] = (bin_dir / name).stat().st_size
    manifest = Manifest(
        debian_version=debian_version,
        kubernetes_version=_kubernetes_version(bin_dir / "kube-apiserver"),
        go_version=_go_version(),
        built_at=datetime.now(UTC).isoformat(timespec="seconds"),
        build_seconds=round(build_seconds, 1),
        binary_sizes=sizes,
    )
    partial_manifest = target / f".{MANIFEST_NAME}.partial"
    partial_manifest.write_text(json.dumps(asdict(manifest), indent=2) + "\n")
    partial_manifest.replace(target / MANIFEST_NAME)
    return target


@contextlib.contextmanager
def _build_lock(root: Path) -> Iterator[None]:
    """Serialise concurrent `make cluster` runs (e.g. two terminals) on one cache."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".build.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def build(*, force: bool, keep_source: bool, out: TextIO) -> Path:
    """Run every step; return the cache directory holding the binaries."""
    root = cache_root()
    work = root / "build"
    logs = work / "logs"
    progress = Progress(6, out)
    with progress.step("check Debian and prerequisites"):
        check_prerequisites(progress, logs=logs)
    with _build_lock(root):
        cached = _cached_build(root)
        if cached is not None and not force:
            directory, manifest = cached
            progress.say(
                f"cached: kubernetes {manifest.kubernetes_version} "
                f"(Debian {manifest.debian_version}) in {directory / 'bin'}"
            )
            return directory
        if logs.exists():
            shutil.rmtree(logs)
        with progress.step("fetch Debian's kubernetes source package (private apt config)"):
            tree = fetch_source(work, progress, logs=logs)
        with progress.step("replace vendored reflect2 and json-iterator (Go 1.19 fix)"):
            replace_vendored(tree, progress, logs=logs)
        built: dict[str, Path] = {}
        for component in COMPONENTS:
            with progress.step(f"build {component} (upstream make)"):
                built[component] = build_component(
                    tree, component, progress=progress, gocache=work / "gocache", logs=logs
                )
        with progress.step("install binaries into the cache"):
            target = install_binaries(
                tree, built, root=root, build_seconds=time.monotonic() - progress.started
            )
            if not keep_source:
                # 300 MB of source plus generated files; the Go cache is kept for rebuilds.
                shutil.rmtree(tree)
            progress.say(f"    {target / 'bin'}")
        return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.build",
        description="Build and cache kube-apiserver and kube-controller-manager for the sandbox.",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even when cached")
    parser.add_argument(
        "--keep-source", action="store_true", help="keep the unpacked source tree after building"
    )
    args = parser.parse_args(argv)
    began = time.monotonic()
    try:
        build(force=args.force, keep_source=args.keep_source, out=sys.stdout)
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
