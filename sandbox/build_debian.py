"""Build kube-apiserver and kube-controller-manager v1.20 from Debian's source package.

The oldest Kubernetes we support is the one Debian bookworm packages as source
(``kubernetes 1.20.5+really1.20.2-1.1+deb12u1``, upstream v1.20.2 plus Debian's patches).
It is fetched through a private apt configuration (the system's apt setup is never
touched), two vendored Go libraries that crash under Go 1.19 are swapped for Debian's
fixed copies, and upstream's ``make`` builds the binaries with **Debian's Go 1.19**,
named by its path: the tree predates Go modules and newer toolchains, so whatever ``go``
happens to be first on PATH (a Go 1.26 for the current releases) must never build it.
etcd is Debian's ``etcd-server`` (3.4), used as installed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from sandbox.buildsteps import BuildError, Progress, command_output, is_root, run_logged

# Debian's golang-go (bookworm) is this toolchain; the path, not PATH, picks it.
GO_119 = Path("/usr/lib/go-1.19/bin/go")
GO_119_VERSION_PREFIX = "go version go1.19"

# Vendored trees replaced by Debian's newer copies: reflect2 1.0.1 / json-iterator 1.1.10
# segfault in map iteration when compiled with Go 1.19.
VENDOR_REPLACEMENTS: tuple[tuple[str, str], ...] = (
    ("github.com/modern-go/reflect2", "/usr/share/gocode/src/github.com/modern-go/reflect2"),
    ("github.com/json-iterator/go", "/usr/share/gocode/src/github.com/json-iterator/go"),
)


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
    if is_root():
        # Downloads land in our cache dir, which the unprivileged _apt user cannot write.
        options += ["-o", "APT::Sandbox::User=root"]
    log = logs / "fetch-source.log"
    run_logged(
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
    run_logged(
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
    run_logged(
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
        run_logged(
            f"replace vendor/{vendored}",
            ["rsync", "-a", "--delete", "--exclude", "*_test.go", f"{source}/", f"{target}/"],
            log=logs / "vendor.log",
            progress=progress,
        )
        progress.say(f"    vendor/{vendored} <- {debian_copy}")


def go119_env(go: Path = GO_119) -> dict[str, str]:
    """The environment upstream ``make`` runs in: Go 1.19 first on PATH, no GO* overrides.

    ``hack/lib/golang.sh`` runs ``go`` from PATH; putting Debian's Go 1.19 directory first
    is how the path we name reaches it. GOTOOLCHAIN=local stops any newer ``go`` that
    might still be reached from switching toolchains on its own.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
    env["PATH"] = f"{go.parent}{os.pathsep}{env.get('PATH', '')}"
    env["GOTOOLCHAIN"] = "local"
    return env


def check_go119(go: Path = GO_119) -> str:
    """``go version`` of Debian's Go 1.19 as ``make`` will see it; BuildError otherwise."""
    if not go.is_file():
        raise BuildError(
            f"{go} is missing: the v1.20 control plane is built with Debian's Go 1.19 "
            "(package golang-go; `make cluster` as root installs it)"
        )
    seen = command_output(["go", "version"], env=go119_env(go))
    if not seen.startswith(GO_119_VERSION_PREFIX):
        raise BuildError(
            f"with {go.parent} first on PATH, `go version` says {seen or 'nothing'!r}, "
            "not Go 1.19: the v1.20 tree must be built with Debian's Go 1.19"
        )
    return seen.removeprefix("go version ").strip()


def build_component(
    tree: Path,
    component: str,
    *,
    progress: Progress,
    gocache: Path,
    logs: Path,
    env: Mapping[str, str],
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
    run_logged(
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
