# QARun developer commands. `make help` lists them.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV := .venv/bin
PYTEST_ARGS ?=

.PHONY: help setup test lint demo bench bench-infra bench-worker bench-flink clean-cache

help: ## list the commands
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

setup: ## install every component from package registries into .cache/ (warm: seconds)
	@bash scripts/setup.sh

lint: setup ## ruff, mypy and the import contracts
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy
	$(VENV)/lint-imports

test: setup lint ## everything CI runs: set-up, lint, the whole test suite on real components
	@bash scripts/install-chromium.sh
	$(VENV)/pytest $(PYTEST_ARGS)

demo: setup ## run k8s/qarun.yaml end to end on this machine (1,000 questions), then the report and dashboard
	$(VENV)/qarun run -f k8s/qarun.yaml --local --total 1000 $(DEMO_ARGS)

bench: setup bench-infra bench-worker bench-flink ## all benchmarks; results in benchmarks/results/

bench-infra: setup ## start-up times and Kafka round-trip throughput of the local infrastructure
	$(VENV)/python benchmarks/bench_infra.py

bench-worker: setup ## one LLM worker vs the simulator, beside the plain-client baseline and raw aiohttp
	$(VENV)/python benchmarks/bench_worker.py

bench-flink: setup ## records/s through the scoring job, lexical and embedding, Kafka in and out
	$(VENV)/python benchmarks/bench_flink.py

clean-cache: ## forget every installed component (the next setup is a cold one)
	rm -rf .cache .venv
