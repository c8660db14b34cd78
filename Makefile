# RSPP task runner. The README and .ci/run use these targets only.
#   make demo   set up, start the local broker, run the main job
#   make test   set up, start the broker if needed, run ruff, mypy and pytest
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
# Use the active virtualenv when there is one, else a project-local .venv.
ifdef VIRTUAL_ENV
VENV := $(VIRTUAL_ENV)
else
VENV := .venv
endif
BIN := $(VENV)/bin
STAMP := $(VENV)/.rspp-installed
PYTEST_ARGS ?=
# CI passes --fresh: a clean clone gets a broker with no topics left from earlier runs.
BROKER_UP_ARGS ?=

.PHONY: help setup system-deps broker-up broker-down lint typecheck unit test demo bench fuzz soak livekit jaeger clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]' && $(BIN)/python -m pip install -q pipelines/examples/custom_sentiment_node
	@touch $(STAMP)

system-deps: ## Debian packages the voice nodes and tests need (espeak-ng, prometheus); no-op when present
	@bash .ci/system-deps.sh

setup: system-deps $(STAMP) ## create the venv and install RSPP with dev tools

broker-up: setup ## start the local Kafka broker (skipped when RSPP_BOOTSTRAP is set)
	$(BIN)/rspp broker up $(BROKER_UP_ARGS)

broker-down: ## stop the local Kafka broker
	-$(BIN)/rspp broker down

livekit: ## build livekit-server 1.8.4 once (Go; for the LiveKit bridge test)
	@bash .ci/livekit.sh >/dev/null

jaeger: ## build Jaeger all-in-one 1.75.0 once (Go; the OTLP receiver of the trace export test)
	@bash .ci/jaeger.sh >/dev/null

lint: setup ## ruff
	$(BIN)/ruff check streams pipelines replay tests bench

typecheck: setup ## mypy --strict on the three packages
	$(BIN)/mypy

unit: setup ## fast tests, no broker
	$(BIN)/pytest -m "not kafka" -q $(PYTEST_ARGS)

test: setup lint typecheck broker-up livekit jaeger ## everything CI runs: lint, types, all tests on a real broker
	$(BIN)/pytest -q $(PYTEST_ARGS)

demo: setup ## the main job end to end on a local broker
	$(BIN)/rspp demo

bench: setup broker-up ## benchmarks vs baselines; prints a table and writes bench/results/*.json
	$(BIN)/python -m bench

FUZZ_EXAMPLES ?= 400
fuzz: setup broker-up ## hostile-ingress property test, longer than in make test; prints records tried
	RSPP_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -q -s -p no:cacheprovider tests/fault/test_ingress_fuzz.py -k none_is_lost

SOAK_ARGS ?=
soak: setup broker-up ## long fault campaign (200 SIGKILLs under load, <= 15 min); summary + soak.json
	$(BIN)/python -m tests.fault.soak --json-out soak.json $(SOAK_ARGS)

clean: ## remove build and test caches (not the broker cache)
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
