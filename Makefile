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

.PHONY: help venv cluster lint test test-unit demo e2e bench crds clean

help:
	@echo "make demo   - build/start the local sandbox and roll out a bad then a good version"
	@echo "make test   - lint and run every test (sets up the virtualenv and sandbox itself)"
	@echo "make lint   - ruff, mypy and the import layers"
	@echo "make crds   - regenerate manifests/crds/ from the pydantic models"
	@echo "make e2e    - the scenarios on a kind cluster (skips without Docker/kind)"
	@echo "make bench  - benchmarks; results go to docs/benchmarks.md"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
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

test: venv cluster lint
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadfile

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
	$(PY) -m controller.argo.docs docs/argo.md

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
