# deployctl — the two commands that matter are `make demo` and `make test`.
# Everything they need is installed by the targets below, so a fresh clone works.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
CLUSTER ?= sandbox
# pytest workers; each starts its own sandbox, files stay whole on one worker.
TEST_WORKERS ?= 3

LOCKS := requirements/runtime.lock requirements/dev.lock

.PHONY: help venv cluster lint test test-unit demo e2e bench crds clean lock audit

help:
	@echo "make demo   - build/start the local sandbox and roll out a bad then a good version"
	@echo "make test   - lint and run every test (sets up the virtualenv and sandbox itself)"
	@echo "make lint   - ruff, mypy and the import layers"
	@echo "make crds   - regenerate manifests/crds/ from the pydantic models"
	@echo "make e2e    - the scenarios on a kind cluster (skips without Docker/kind)"
	@echo "make bench  - benchmarks; results go to docs/benchmarks.md"
	@echo "make lock   - re-resolve requirements/*.lock from pyproject.toml (uv)"
	@echo "make audit  - known vulnerabilities in the locked dependencies (pip-audit)"

# Exactly the locked versions, each checked against its hash; then the project itself
# without resolving anything (its dependencies are all in the lock).
$(STAMP): pyproject.toml $(LOCKS)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --require-hashes -r requirements/dev.lock
	$(VENV)/bin/pip install -q --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

# Installs the system prerequisites (apt, when root), builds kube-apiserver and
# kube-controller-manager from Debian's source package once and caches them.
cluster: venv
	$(PY) -m sandbox.build

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test-unit: venv
	$(VENV)/bin/pytest -m "not cluster and not prometheus"

test: venv cluster lint audit
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadfile

# One universal resolution (every platform, Python 3.11+) with hashes; the dev set is
# constrained by the runtime lock, so both agree on every shared package.
lock: venv
	$(VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.11 \
		--generate-hashes --no-header -q -o requirements/runtime.lock
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
		--generate-hashes --no-header -q -c requirements/runtime.lock -o requirements/dev.lock

# Skips with one line (exit 0) where the advisory database cannot be reached.
audit: venv
	$(PY) requirements/audit.py

demo: venv
ifeq ($(CLUSTER),kind)
	$(PY) -m e2e.demo_kind
else
	$(MAKE) cluster
	$(PY) -m sandbox.demo
endif

e2e: venv
	$(PY) -m e2e.run

bench: venv cluster
	$(PY) -m tests.bench.run

crds: venv
	$(PY) -m controller.crdgen manifests/crds
	$(PY) -m controller.docgen docs/reference.md

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
