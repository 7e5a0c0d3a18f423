# QARun developer commands. `make help` lists them.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV := .venv/bin
PYTEST_ARGS ?=

.PHONY: help setup setup-local images cluster test test-cluster lint demo demo-k8s bench bench-infra bench-worker bench-adaptive bench-flink bench-embedding bench-e2e clean-cache

help: ## list the commands
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

setup: ## install every component from package registries into .cache/ (warm: seconds)
	@bash scripts/setup.sh

setup-local: ## only what a local run needs (no Kubernetes tools): a cold `make demo` is minutes
	@bash scripts/setup.sh --no-kube

images: setup ## build every image the stack runs (podman, local Debian bases) into the node's registry (warm: seconds)
	@bash scripts/build-images.sh

cluster: images ## a real single-node Kubernetes cluster here (kubelet, containerd, CoreDNS, registry); prints its KUBECONFIG, Ctrl-C stops it
	$(VENV)/python -m qarun_devstack cluster

lint: setup ## ruff, mypy and the import contracts
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy
	$(VENV)/lint-imports

test: setup lint images ## everything CI runs: set-up, lint, images, the whole test suite on real components
	@bash scripts/install-chromium.sh
	$(VENV)/pytest $(PYTEST_ARGS)

test-cluster: setup images ## QARun on the real node: helm install, kubectl apply, scale, pod kills, delete (part of `make test`; alone here)
	$(VENV)/pytest tests/cluster $(PYTEST_ARGS)

demo: setup-local ## run k8s/qarun.yaml end to end on this machine (1,000 questions), then the report and dashboard
	$(VENV)/qarun run -f k8s/qarun.yaml --local --total 1000 $(DEMO_ARGS)

demo-k8s: images ## the same demo on the real node: helm install, kubectl apply, progress, then the report
	$(VENV)/qarun run -f k8s/qarun.yaml --k8s --total 1000 $(DEMO_ARGS)

bench: setup bench-infra bench-worker bench-adaptive bench-flink bench-embedding bench-e2e ## all benchmarks; results in benchmarks/results/

bench-infra: setup ## start-up times and Kafka round-trip throughput of the local infrastructure
	$(VENV)/python benchmarks/bench_infra.py

bench-worker: setup-local ## one LLM worker vs the simulator, beside the plain-client baseline and raw aiohttp
	$(VENV)/python benchmarks/bench_worker.py

bench-adaptive: setup-local ## the concurrency controller under random faults, a capacity and an RPM limit (0.5 s latency)
	$(VENV)/python benchmarks/bench_adaptive.py $(BENCH_ARGS)

bench-flink: setup-local ## records/s through the scoring job, lexical and embedding, Kafka in and out
	$(VENV)/python benchmarks/bench_flink.py

bench-embedding: setup-local ## the embedding scorer alone: records/s and CPU per record, int8 / onnx / numpy
	$(VENV)/python benchmarks/bench_embedding.py --out benchmarks/results/embedding.json

bench-e2e: setup-local ## whole local runs: questions/s end to end and pipeline overhead, beside the baseline
	$(VENV)/python benchmarks/bench_e2e.py $(BENCH_ARGS)

clean-cache: ## forget every installed component (the next setup is a cold one)
	rm -rf .cache .venv
