"""The integration tests' ``cluster`` and ``start_controller`` fixtures, for the dashboard's
sandbox and browser tests."""

from tests.integration.conftest import cluster, start_controller

__all__ = ["cluster", "start_controller"]
