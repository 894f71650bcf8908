"""``make audit``: known vulnerabilities in the locked dependency sets, with pip-audit.

Audits ``requirements/runtime.lock`` and ``requirements/dev.lock`` exactly as locked
(``--disable-pip --require-hashes``: nothing is resolved or installed). Advisory data
comes from PyPI's per-release vulnerability records, or from OSV when PyPI's cannot be
read. When neither can be reached (a machine that reaches the package index but not the
advisory data), it prints one line saying so and exits 0, so ``make test`` still runs;
found vulnerabilities exit 1 and are listed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOCKS = (HERE / "runtime.lock", HERE / "dev.lock")


def audit(service: str) -> tuple[int, dict[str, object] | None, str]:
    """pip-audit's exit code, its JSON report (None when it produced none), stderr."""
    command = [sys.executable, "-m", "pip_audit", "--disable-pip", "--require-hashes"]
    for lock in LOCKS:
        command += ["-r", str(lock)]
    command += ["-s", service, "--timeout", "10", "--progress-spinner", "off", "-f", "json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    try:
        report = json.loads(done.stdout)
    except ValueError:
        return done.returncode, None, done.stderr
    return done.returncode, report, done.stderr


def main() -> int:
    why = []
    for service in ("pypi", "osv"):
        code, report, stderr = audit(service)
        if report is None:
            last = (stderr.strip().splitlines() or ["no output"])[-1]
            # "requests.exceptions.ConnectionError: HTTPSConnectionPool(...)" -> the type.
            why.append(f"{service}: {last.split(':', 1)[0].rsplit('.', 1)[-1][:80]}")
            continue
        dependencies = list(report.get("dependencies") or [])  # type: ignore[call-overload]
        skipped = [d for d in dependencies if d.get("skip_reason")]
        if dependencies and len(skipped) == len(dependencies):
            why.append(f"{service}: none of {len(dependencies)} packages found")
            continue
        vulnerable = [d for d in dependencies if d.get("vulns")]
        for dep in vulnerable:
            for vuln in dep["vulns"]:
                fixes = ", ".join(vuln.get("fix_versions") or []) or "no fix yet"
                print(f"{dep['name']} {dep['version']}: {vuln['id']} (fixed in {fixes})")
        for dep in skipped:
            print(f"not audited: {dep['name']}: {dep['skip_reason']}")
        audited = len(dependencies) - len(skipped)
        print(
            f"audit ({service}): {audited} locked packages audited, "
            f"{len(vulnerable)} with known vulnerabilities"
        )
        return 1 if vulnerable else 0
    print(f"audit: skipped, the advisory database cannot be reached ({'; '.join(why)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
