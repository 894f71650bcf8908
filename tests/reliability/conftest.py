"""Reliability tests reuse the operator integration fixtures (``cluster``,
``start_controller``). ``DEPLOYCTL_RELIABILITY=large`` runs the large setting."""

from __future__ import annotations

import os

from tests.integration.conftest import cluster, start_controller  # noqa: F401

LARGE = os.environ.get("DEPLOYCTL_RELIABILITY", "").lower() == "large"
