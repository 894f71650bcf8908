"""Exit codes of ``deployctl``: a stable contract for CI pipelines.

Documented in ``deployctl --help`` and the README; never renumber them.
"""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    OK = 0  # promoted / healthy / valid
    ROLLED_BACK = 1  # rolled back or aborted (or: the file has problems, for validate)
    USAGE = 2  # usage or validation error
    TIMEOUT = 3  # timed out waiting
    UNREACHABLE = 4  # cannot reach/use the cluster or Prometheus, or no controller running


HELP = """Exit codes (stable, for CI):
  0  promoted / healthy / valid
  1  rolled back or aborted (validate: the file has problems)
  2  usage or validation error
  3  timed out waiting (--wait --timeout)
  4  cannot reach or use the cluster (unreachable, forbidden by RBAC, CRDs missing)
     or Prometheus, or no controller is running"""
