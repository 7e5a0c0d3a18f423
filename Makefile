# QARun developer commands. `make help` lists them.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV := .venv/bin
PYTEST_ARGS ?=

.PHONY: help setup test lint unit demo bench bench-infra clean-cache

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

setup: ## install every component from package registries into .cache/ (warm: seconds)
	@bash scripts/setup.sh

lint: setup ## ruff, mypy and the import contracts
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy
	$(VENV)/lint-imports

test: setup lint ## everything CI runs: set-up, lint, the whole test suite on real components
	$(VENV)/pytest $(PYTEST_ARGS)

demo: setup ## start the local infrastructure and print where each service listens (Ctrl-C stops)
	$(VENV)/python -m qarun_devstack up

bench: setup bench-infra ## all benchmarks; results in benchmarks/results/

bench-infra: setup ## start-up times and Kafka round-trip throughput of the local infrastructure
	$(VENV)/python benchmarks/bench_infra.py

clean-cache: ## forget every installed component (the next setup is a cold one)
	rm -rf .cache .venv
