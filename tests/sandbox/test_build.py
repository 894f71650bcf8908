"""The control-plane build's decisions, without building: which release, which Go, which
cache entry, which wrapper module. (The builds themselves run in `make cluster`; every
cluster test then runs what they produced.)"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from sandbox import build, build_debian, build_gomod
from sandbox.build import BinariesMissing, find_binaries
from sandbox.buildsteps import BuildError

KUBERNETES_GO_MOD = """\
module k8s.io/kubernetes

go 1.26.0

require (
\tk8s.io/api v0.0.0
\tk8s.io/client-go v0.0.0
\tgo.etcd.io/etcd/client/v3 v3.7.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tk8s.io/pod-security-admission => ./staging/src/k8s.io/pod-security-admission
)
"""


def fake_build(root: Path, directory: str, *, version: str, go: str, components) -> Path:
    bin_dir = root / directory / "bin"
    bin_dir.mkdir(parents=True)
    sizes = {}
    for name in components:
        (bin_dir / name).write_bytes(b"#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)
        sizes[name] = 10
    manifest = {
        "debian_version": "",
        "kubernetes_version": version,
        "go_version": go,
        "built_at": "2026-01-01T00:00:00+00:00",
        "build_seconds": 1.0,
        "binary_sizes": sizes,
        "source": "test",
    }
    (bin_dir.parent / "manifest.json").write_text(json.dumps(manifest))
    return bin_dir


def test_release_selection_defaults_to_the_newest_and_names_what_is_supported(monkeypatch):
    monkeypatch.delenv(build.KUBERNETES_ENV, raising=False)
    assert build.selected_release().minor == "1.37"
    assert build.selected_release("v1.20.2").minor == "1.20"
    monkeypatch.setenv(build.KUBERNETES_ENV, "1.20")
    assert build.selected_release().minor == "1.20"
    with pytest.raises(ValueError, match="1.29 is not supported.*1.37, 1.20"):
        build.selected_release("1.29")
    with pytest.raises(ValueError, match="unknown Kubernetes version 'latest'"):
        build.selected_release("latest")


def test_each_version_finds_its_own_build(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOYCTL_CACHE", str(tmp_path))
    new = fake_build(
        tmp_path,
        "kubernetes-1.37.2",
        version="v1.37.2",
        go="go1.26.8",
        components=("kube-apiserver", "kube-controller-manager", "kubectl", "etcd"),
    )
    old = fake_build(
        tmp_path,
        "kubernetes-1.20.2",
        version="v1.20.2",
        go="go1.19.8",
        components=("kube-apiserver", "kube-controller-manager"),
    )
    current = find_binaries("1.37")
    assert (current.apiserver, current.etcd, current.kubectl) == (
        new / "kube-apiserver",
        new / "etcd",
        new / "kubectl",
    )
    assert current.minor == (1, 37)
    oldest = find_binaries("1.20")
    assert oldest.apiserver == old / "kube-apiserver" and oldest.kubectl is None
    assert oldest.version == "v1.20.2"


def test_a_1_20_build_made_by_another_go_is_not_the_oldest_release(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOYCTL_CACHE", str(tmp_path))
    fake_build(
        tmp_path,
        "kubernetes-1.20.5+really1.20.2-1.1+deb12u1",
        version="v1.20.2",
        go="go version go1.26.8 linux/amd64",
        components=("kube-apiserver", "kube-controller-manager"),
    )
    with pytest.raises(BinariesMissing, match=r"run `make cluster KUBERNETES=1.20`"):
        find_binaries("1.20")


def test_a_missing_current_build_names_make_cluster(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOYCTL_CACHE", str(tmp_path))
    with pytest.raises(BinariesMissing, match=r"1.37 control plane .* run `make cluster` "):
        find_binaries("1.37")


def test_the_wrapper_pins_every_staging_module_to_the_matching_release():
    go_mod = build_gomod.kubernetes_wrapper(KUBERNETES_GO_MOD, "v1.37.2")
    assert "require (\n\tk8s.io/kubernetes v1.37.2\n)" in go_mod
    for module in ("k8s.io/api", "k8s.io/client-go", "k8s.io/pod-security-admission"):
        assert f"\t{module} => {module} v0.37.2\n" in go_mod
    assert "etcd" not in go_mod  # only the staging modules are pinned
    assert "\ngo 1.26.0\n" in go_mod
    assert "\tk8s.io/kubernetes/cmd/kubectl\n" in go_mod  # a tool of the module
    assert build_gomod.staging_version("v1.37.2") == "v0.37.2"
    with pytest.raises(ValueError):
        build_gomod.staging_version("v2.0.0")


def test_version_flags_make_the_binaries_report_the_release():
    flags = build_gomod.version_ldflags("v1.37.2", "2026-10-27T12:01:04Z").split(" -X ")
    assert "k8s.io/component-base/version.gitVersion=v1.37.2" in flags
    assert "k8s.io/component-base/version.gitMinor=37" in flags
    assert "k8s.io/client-go/pkg/version.buildDate=2026-10-27T12:01:04Z" in flags


def fake_go(path: Path, version: str) -> Path:
    path.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        f'"env GOVERSION") echo {version};;\n'
        f'"version") echo go version {version} linux/amd64;;\n'
        "*) echo proxy;;\n"
        "esac\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_the_current_build_takes_a_new_enough_go_and_explains_otherwise(tmp_path, monkeypatch):
    old = fake_go(tmp_path / "go-old", "go1.19.8")
    new = fake_go(tmp_path / "go-new", "go1.26.8")
    monkeypatch.setenv(build_gomod.GO_ENV, str(new))
    toolchain = build_gomod.find_go(tmp_path / "cache")
    assert toolchain.go == new and toolchain.version == "go1.26.8"
    assert toolchain.env["GOTOOLCHAIN"] == "local"
    assert toolchain.env["GOMODCACHE"] == str(tmp_path / "cache" / "mod")
    monkeypatch.setenv(build_gomod.GO_ENV, str(old))
    with pytest.raises(BuildError, match=r"needs Go 1\.26 or newer; found .*go-old \(go1\.19\.8\)"):
        build_gomod.find_go(tmp_path / "cache")


def test_the_1_20_build_runs_make_with_go_1_19_first_on_path(tmp_path, monkeypatch):
    monkeypatch.setenv("GOFLAGS", "-mod=mod")
    monkeypatch.setenv("PATH", f"/usr/local/go/bin{os.pathsep}/usr/bin")
    env = build_debian.go119_env(Path("/usr/lib/go-1.19/bin/go"))
    assert env["PATH"].split(os.pathsep)[0] == "/usr/lib/go-1.19/bin"
    assert "GOFLAGS" not in env and env["GOTOOLCHAIN"] == "local"
    wrong = fake_go(tmp_path / "go", "go1.26.8")
    with pytest.raises(BuildError, match="not Go 1.19"):
        build_debian.check_go119(wrong)
    with pytest.raises(BuildError, match="golang-go"):
        build_debian.check_go119(tmp_path / "absent" / "go")


def test_every_file_ci_runs_on_the_oldest_release_exists():
    from tests.conftest import COMPAT_FILES, TESTS

    assert sorted(name for name in COMPAT_FILES if not (TESTS / name).is_file()) == []
