# Two commands: `make run` (the workflow) and `make test` (the test suite).
# Both create .venv first if it is missing or older than the dependency pins.
# `make gpu-check` (on a CUDA machine): the MNIST study's GPU tests, a short training in each
# precision and the MNIST bench, one JSON summary (bench/gpu_check.sh; it uses the machine's own
# torch through $(PYTHON), not .venv). OUT=folder sets where the summary goes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORES  ?= all
# Optional: a folder that already holds the four MNIST files (.gz or uncompressed): the data
# stage of `make run` takes them from there, and `make test` runs the test that needs them.
MNIST_DIR ?=
# Optional: extra arguments for snakemake, e.g. ARGS="--configfile config/smoke.yaml".
ARGS ?=

SNAKEMAKE_ARGS := --cores $(CORES) $(if $(MNIST_DIR),--config mnist_dir=$(abspath $(MNIST_DIR))) $(ARGS)

.PHONY: run test lint venv clean gpu-check results-readme bench
venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/snakemake $(SNAKEMAKE_ARGS)

test: $(STAMP)
	$(if $(MNIST_DIR),MNIST_DIR=$(abspath $(MNIST_DIR))) $(BIN)/python -m pytest $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint

# Copy a run's results/report/claims.md (what ran, and the claims table) into the README.
results-readme: $(STAMP)
	$(BIN)/python -m pipeline.report readme results/report/claims.md README.md

# Every benchmark, one after the other (each writes bench/results/<name>.json); on a quiet machine.
bench: $(STAMP)
	for b in stability stepsize bias1d edge mnist; do $(BIN)/python bench/bench_$$b.py || exit 1; done

gpu-check:
	PYTHON=$(PYTHON) bash bench/gpu_check.sh

# Every folder a run writes under results/ (each registered study's and the shared ones, from
# pipeline/studies.py) and .snakemake; results/README.md stays.
clean: $(STAMP)
	rm -rf $$($(BIN)/python -m pipeline.studies results-folders)
