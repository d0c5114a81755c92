# One entry point for every task. `make run` and `make test` set everything up themselves.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= examples/demo.yaml
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: run test lint bench soak bench-operator envtest prometheus deps crds fmt clean test-unit test-operator sdk image kind-up kind-down test-install dashboards

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

deps: $(STAMP)


run: deps
	@AIMM_API_KEY=$${AIMM_API_KEY:-sk-aimm-demo} AIMM_ADMIN_TOKEN=$${AIMM_ADMIN_TOKEN:-admin-demo} \
	  $(BIN)/aimm gateway serve --config $(CONFIG) --host $(HOST) --port $(PORT)

envtest:
	@bash hack/envtest.sh

# prometheus + promtool from the Prometheus Go module, cached in ~/.cache/aimm/bin (tests/observability)
prometheus:
	@bash hack/prometheus.sh

# docs/observability/*.png: every Grafana dashboard drawn from a real Prometheus scraping a gateway
# under load (tests/observability/test_prometheus_e2e.py draws them into its artifacts/ in make test too)
dashboards: deps prometheus
	$(BIN)/pytest -q -p no:cacheprovider tests/observability/test_prometheus_e2e.py -k drawn_from_the_real_data
	mkdir -p docs/observability && cp tests/observability/artifacts/aimm-*.png docs/observability/

# mypy sees the packages by their import names through links (the folder `operator/` would
# otherwise shadow the standard library's `operator` module).
lint: deps
	$(BIN)/ruff check gateway operator tests sdk/python
	$(BIN)/ruff format --check gateway operator tests sdk/python
	@mkdir -p .typecheck && ln -sfn ../gateway .typecheck/aimm_gateway && ln -sfn ../operator .typecheck/aimm_operator
	$(BIN)/mypy -p aimm_gateway -p aimm_operator
	cd sdk/python && ../../$(BIN)/mypy aimm_client  # strict, from sdk/python/pyproject.toml

fmt: deps
	$(BIN)/ruff format gateway operator tests sdk/python
	$(BIN)/ruff check --fix gateway operator tests sdk/python

# Client SDK artefacts into dist/sdk/: Python wheel + sdist, npm tarball (the SDK tests install these).
sdk: deps
	@bash hack/sdk-build.sh

crds: deps
	$(BIN)/aimm crds --out crds
	$(BIN)/aimm crds --out charts/ai-multimodel/crds
	$(BIN)/python -P -m aimm_operator.alerts
	$(BIN)/python -P deploy/grafana/generate.py
	$(BIN)/python -P deploy/argocd/generate.py
	$(BIN)/python -P hack/chart_schema.py

# Debian packages the tests use (see hack/system-deps.sh); lua5.4, buildah and
# debootstrap serve the install tests (Argo CD health scripts, the image and its offline base).
test: deps envtest prometheus lint sdk
	@bash hack/system-deps.sh redis-server pg_ctlcluster:postgresql lua5.4 buildah debootstrap nginx:nginx-light chromium chromedriver:chromium-driver
	$(BIN)/pytest -q -p no:cacheprovider

test-unit: deps
	$(BIN)/pytest -q tests/unit

test-operator: deps envtest
	$(BIN)/pytest -q tests/operator tests/unit/test_operator_*.py

# The container image (Containerfile) with buildah; see hack/image.sh for IMAGE / IMAGE_BASE.
image:
	@bash hack/system-deps.sh buildah debootstrap
	@bash hack/image.sh

# A local kind cluster (kind-config.yaml) running the chart, examples/k8s/ and the image.
kind-up:
	@bash hack/kind.sh up

kind-down:
	@bash hack/kind.sh down

test-install: deps envtest
	@bash hack/system-deps.sh lua5.4 buildah debootstrap
	$(BIN)/pytest -q tests/install

bench: deps
	@bash hack/system-deps.sh wrk nginx:nginx-light
	$(BIN)/aimm bench --out docs/benchmarks.md
	PYTHONPATH=sdk/python $(BIN)/python -P sdk/python/bench.py

# The control plane at N = 10, 100, 1,000, 5,000 AIModels (real API server + operator process).
bench-operator: deps envtest
	$(BIN)/python -m tests.bench.operator_scale --pods 5 --idle 60 --out docs/benchmarks.md

# 30 minutes at half one worker's capacity: RSS, descriptors and p99 must stay flat (SOAK_MINUTES=5 to try it).
SOAK_MINUTES ?= 30
soak: deps
	@bash hack/system-deps.sh wrk
	$(BIN)/aimm bench --soak $(SOAK_MINUTES) --out docs/benchmarks.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache dist sdk/js/dist sdk/js/node_modules
