"""Tests of the pure strategy planners (no cluster, no Prometheus)."""
