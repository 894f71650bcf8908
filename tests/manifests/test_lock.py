"""The lock files are current and are what the tests run on.

``requirements/runtime.lock`` and ``requirements/dev.lock`` (``make lock``) pin every
package with hashes; ``make venv`` installs exactly them. Checked here: every dependency
in pyproject.toml is locked at a version it allows, the two locks agree, every pin
carries a hash, and the environment running these tests has the locked versions.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
_PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>[^\s;\\]+)\s*(?:;\s*(?P<marker>[^\\]+?))?\s*\\?$"
)


def pins(lock: str) -> dict[str, tuple[str, Marker | None]]:
    out: dict[str, tuple[str, Marker | None]] = {}
    lines = (ROOT / "requirements" / lock).read_text().splitlines()
    for index, line in enumerate(lines):
        match = _PIN.match(line)
        if match is None:
            continue
        marker = Marker(match["marker"]) if match["marker"] else None
        out[canonicalize_name(match["name"])] = (match["version"], marker)
        assert lines[index + 1].strip().startswith("--hash=sha256:"), f"{lock}: {line} has no hash"
    return out


def project() -> dict[str, list[str]]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {
        "runtime": list(data["dependencies"]),
        "dev": list(data["optional-dependencies"]["dev"]),
    }


def test_every_dependency_is_locked_at_an_allowed_version() -> None:
    deps = project()
    runtime, dev = pins("runtime.lock"), pins("dev.lock")
    for lock, wanted in ((runtime, deps["runtime"]), (dev, deps["runtime"] + deps["dev"])):
        for text in wanted:
            requirement = Requirement(text)
            name = canonicalize_name(requirement.name)
            assert name in lock, f"{name} is not locked; run `make lock`"
            version = lock[name][0]
            assert requirement.specifier.contains(version, prereleases=True), (
                f"{name}=={version} does not satisfy {requirement}; run `make lock`"
            )


def test_the_dev_lock_agrees_with_the_runtime_lock() -> None:
    runtime, dev = pins("runtime.lock"), pins("dev.lock")
    assert {n: v for n, (v, _) in runtime.items()} == {n: dev[n][0] for n in runtime}


def test_the_tests_run_on_the_locked_versions() -> None:
    locked = pins("dev.lock")
    installed: dict[str, str] = {
        str(canonicalize_name(d.metadata["Name"])): d.version for d in metadata.distributions()
    }
    differ = {
        name: (version, installed.get(name))
        for name, (version, marker) in locked.items()
        if (marker is None or marker.evaluate()) and installed.get(name) != version
    }
    assert not differ, f"installed != locked (locked, installed): {differ}; run `make venv`"
