# Edge: the two commands that matter are `make up` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never
# mypy's cache outside the work tree: a fresh clone (CI) takes over what an earlier check
# of the same files found (mypy checks each cached file's hash), and its type check takes
# seconds instead of about a minute. Files are written atomically; work trees can share it.
export MYPY_CACHE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/edge/mypy

# PostgreSQL and Redis used by the integration tests (the CI machine's own servers).
export EDGE_TEST_DATABASE_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/test
export EDGE_TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: up down test lint typecheck unit venv native native-strict generate protos bazel bazel-check bench bench-logs bench-gateway bench-tools clean help

help:
	@echo "make up      start the whole stack locally (gateway on 127.0.0.1:7001)"
	@echo "make down    stop it"
	@echo "make observe the stack and a Prometheus scraping it (127.0.0.1:9090)"
	@echo "make test    lint, type-check and run every test (needs PostgreSQL/Redis: installed if absent)"
	@echo "make generate  rewrite every list derived from deploy/services.toml"
	@echo "make protos  regenerate the gRPC code from protos/ (grpcio-tools, pinned)"
	@echo "make bazel   bazel build //... offline"
	@echo "make bench   benchmarks (not part of make test)"

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# The venv is rebuilt whenever the lock file changes; installs are exactly what uv.lock pins.
$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	@echo "dependencies: installing the pinned set (uv.lock) into $(VENV)..."
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

venv: $(VENV)/.synced

# The gateway's per-request modules compiled with mypyc (gateway_api/native.py); rebuilt
# when one of them changes. `make up` goes on as plain Python if it cannot build (no C
# compiler); `make test` and the benchmarks need the build (gcc is installed if absent).
NATIVE_DIR := app/gateway-api/.native
NATIVE_SOURCES := $(wildcard app/gateway-api/gateway_api/*.py app/gateway-api/gateway_api/*/*.py) tools/native_build.py

$(NATIVE_DIR)/manifest.json: $(NATIVE_SOURCES) $(VENV)/.synced
	$(BIN)/python tools/native_build.py $(NATIVE_FLAGS)

native: venv $(NATIVE_DIR)/manifest.json

native-strict:
	@command -v gcc >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc; }
	@$(MAKE) --no-print-directory native NATIVE_FLAGS=--strict

up: venv native
	$(BIN)/python -m edgectl up

# The stack plus a real Prometheus scraping it (Debian's package, installed if missing) on
# 127.0.0.1:9090, data under var/prometheus; doc/observability.md. Same as EDGE_OBSERVE=1 make up.
.PHONY: observe
observe: venv native
	@command -v prometheus >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; }
	EDGE_OBSERVE=1 $(BIN)/python -m edgectl up

down: venv
	$(BIN)/python -m edgectl down

# Every list of services and regions (pyproject, BUILD, CI, compose, kustomize, topologies)
# is written from deploy/services.toml; tests/deploy/test_generated.py fails when one is
# stale. `edgectl new-service sv-foo` adds a service and runs this (doc/guide/).
generate: venv
	$(BIN)/python -m edgectl generate

# The Python code generated from protos/ (tools/protos.py, grpcio-tools pinned exactly in
# pyproject.toml); tests/deploy/test_protos.py fails when it is stale.
protos: venv
	$(BIN)/python tools/protos.py

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check libs app tools tests

typecheck: venv
	$(BIN)/mypy libs/edgelib
	$(BIN)/mypy tools/edgectl tools/native_build.py $(wildcard app/*/*_*)

unit: venv
	$(BIN)/pytest -m "not integration and not e2e"

# pytest-xdist workers for `make test`. Each worker takes its own 10,000 ports from
# EDGE_E2E_PORT_SHIFT (default 10000) up, and its own Redis database: tests/worker.py.
TEST_WORKERS ?= 2

# The suite starts many Python processes (e2e stacks of 13, gateways, services). Where the
# environment sets PYTHONDONTWRITEBYTECODE, each one compiles FastAPI, SQLAlchemy,
# pydantic... from source again: cached bytecode halves the CPU an e2e stack takes to
# start. The cache lives in the venv (made by then), so the work tree gets no __pycache__.
PYTEST_BYTECODE := PYTHONDONTWRITEBYTECODE= PYTHONPYCACHEPREFIX=$(CURDIR)/$(VENV)/pycache

test: venv native-strict
	tools/ci/ensure-services.sh
	$(MAKE) --no-print-directory lint typecheck
	$(PYTEST_BYTECODE) $(BIN)/pytest -n $(TEST_WORKERS)
	$(MAKE) --no-print-directory bazel

bazel: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" bazel build //...

bazel-check: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" tools/bazel/check.sh

bench: venv bench-logs bench-gateway bench-gateway-instructions bench-authz bench-money bench-service bench-service-instructions bench-logins bench-platform bench-grpc
	@echo "benchmarks: see bench/ (added with the performance work)"

# sv-log intake records/s on PostgreSQL (needs the PostgreSQL above); see doc/performance.md.
bench-logs: venv
	$(BIN)/python bench/logs_intake.py --json bench/results/logs-intake.json

# The gateway against nginx (issue 8): wrk load, nginx upstream and proxy, a real Redis.
bench-tools:
	@command -v nginx >/dev/null && command -v wrk >/dev/null && command -v redis-server >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk redis-server; }

bench-gateway: venv native-strict bench-tools
	$(BIN)/python bench/gateway_bench.py

# The console's browser tests (tests/console, Debian's chromium), saving a screenshot of
# every page into doc/console/ (shown in doc/console.md).
.PHONY: console-screenshots
console-screenshots: venv native-strict
	tools/ci/ensure-services.sh
	rm -f doc/console/*.png
	EDGE_CONSOLE_SCREENSHOTS=$(CURDIR)/doc/console $(PYTEST_BYTECODE) $(BIN)/pytest tests/console -q

# Instructions per gateway request under callgrind: repeatable on a noisy machine, for
# comparing two versions of the hot path (valgrind is installed if missing).
.PHONY: bench-gateway-instructions
bench-gateway-instructions: venv native-strict
	@command -v valgrind >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind; }
	for route in direct public pipeline pipeline-quota-other pipeline-app-quota pipeline-console-public; do $(BIN)/python bench/gateway_instructions.py --route $$route --requests 2000; done

# Where one gateway worker spends its CPU under wrk load (py-spy; ROUTE=public|pipeline).
.PHONY: profile-gateway
profile-gateway: venv native-strict bench-tools
	$(BIN)/python bench/gateway_profile.py --route $(or $(ROUTE),pipeline)

# sv-money same-region transfers/s on PostgreSQL vs the same SQL through asyncpg; see
# doc/performance.md. Writes bench/results/money.json and the tables in doc/.
.PHONY: bench-money
bench-money: venv
	$(BIN)/python bench/money.py --json bench/results/money.json --doc

# The gateway's authorization step at 10,000 policies (issue 5); see doc/performance.md.
# A trivial authenticated endpoint on edgelib's full service stack against the same on
# bare Starlette, one run, wrk (from bench-tools); req/s ratio and CPU ms per request.
.PHONY: bench-service
bench-service: venv bench-tools
	$(BIN)/python bench/service.py --json bench/results/service.json

# The same two apps called in-process under callgrind: instructions per request, a figure
# a busy machine does not move (doc/performance.md).
.PHONY: bench-service-instructions
bench-service-instructions: venv
	@command -v valgrind >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind; }
	$(BIN)/python bench/service.py --instructions-only --json bench/results/service-instructions.json

# A login storm on a whole stack (PostgreSQL, Redis): logins/s with argon2id at 19 MiB and
# 2 iterations, and the p99 of /healthz and token refresh meanwhile (doc/performance.md).
.PHONY: bench-logins
bench-logins: venv native
	tools/ci/ensure-services.sh
	$(BIN)/python bench/logins.py --json bench/results/logins.json

# The whole platform under a realistic user mix with Locust, through the gateway of an
# `edgectl up` stack on PostgreSQL and Redis: per-operation req/s, p50/p99, errors, and
# each process's CPU (which saturates first). bench/results/platform.{json,png}.
.PHONY: bench-platform
bench-platform: venv native
	tools/ci/ensure-services.sh
	$(BIN)/python bench/platform_load.py --json bench/results/platform.json

# gRPC unary through the gateway against the same client calling the service directly, and
# HTTP/2 multiplexed GETs against HTTP/1.1 keep-alive through the gateway (one run, ratios).
.PHONY: bench-grpc
bench-grpc: venv native-strict
	@command -v h2load >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-client; }
	$(BIN)/python bench/grpc_bench.py --json bench/results/grpc.json

.PHONY: bench-authz
bench-authz: venv
	$(BIN)/python bench/authz.py --json bench/results/authz.json

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache $(NATIVE_DIR)
