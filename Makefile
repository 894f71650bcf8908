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
# `make demo DASHBOARD=1` also serves the dashboard at DASHBOARD_ADDRESS and prints it.
DASHBOARD ?=
DASHBOARD_ADDRESS ?= 127.0.0.1:3100

LOCKS := requirements/runtime.lock requirements/dev.lock

.PHONY: help venv cluster browser lint test test-unit demo e2e bench crds dashboard-assets clean lock audit

help:
	@echo "make demo   - build/start the local sandbox and roll out a bad then a good version"
	@echo "              (make demo DASHBOARD=1: with the web dashboard, its address printed)"
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

# The dashboard's browser tests drive Debian's Chromium through chromedriver; installed
# here when root, otherwise those tests skip with one line saying how to get them.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null \
		|| { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null; }; \
	else echo "not root: browser tests will skip (apt-get install chromium chromium-driver)"; fi

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test-unit: venv
	$(VENV)/bin/pytest -m "not cluster and not prometheus"

test: venv cluster browser lint audit
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
	$(PY) -m sandbox.demo $(if $(DASHBOARD),--dashboard $(DASHBOARD_ADDRESS))
endif

e2e: venv
	$(PY) -m e2e.run

bench: venv cluster
	$(PY) -m tests.bench.run

crds: venv
	$(PY) -m controller.crdgen manifests/crds
	$(PY) -m controller.docgen docs/reference.md

# uPlot (charts) is bundled into the package: this copies the version pinned in
# controller/dashboard/web/package-lock.json into controller/dashboard/static/vendor/ (committed),
# so neither the tests nor a pip install need npm.
dashboard-assets:
	cd controller/dashboard/web && npm ci --no-audit --no-fund
	cp controller/dashboard/web/node_modules/uplot/dist/uPlot.iife.min.js controller/dashboard/web/node_modules/uplot/dist/uPlot.min.css \
		controller/dashboard/static/vendor/
	cp controller/dashboard/web/node_modules/uplot/LICENSE controller/dashboard/static/vendor/uPlot.LICENSE.txt

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
