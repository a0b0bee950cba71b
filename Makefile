# gapbench: `make evaluate` and `make test` do all the set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
ZOO ?= mini
ZOO_DIR ?= zoos/$(ZOO)
PUBLIC ?= public
WORKERS ?= 2
PREDICTOR ?=
# Offline machines read the raw data from a mirror; ../shared/data is used when it exists.
GAPBENCH_DATA_MIRROR ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
export GAPBENCH_DATA_MIRROR
export MPLBACKEND := Agg

.PHONY: venv venv-test data zoo evaluate publish score leaderboard lint test bench clean-results help

help:
	@echo "make evaluate [PREDICTOR=path.py]  set up, build/reuse the $(ZOO) zoo, evaluate, score, MLflow, board"
	@echo "make test                          lint + the test suite (builds the micro zoo)"
	@echo "make publish                       build the $(PUBLIC) zoo and its held-out twin, evaluate, publish leaderboards/"
	@echo "make leaderboard                   re-render leaderboards/ from leaderboards/data/"
	@echo "make bench                         speed benchmarks (ratios measured in one run)"

# The runtime (make evaluate) and, for make test, the test tools on top (Ray, moto, ruff, ...).
# constraints.txt pins the versions a zoo's hashed metadata records (same spec + code = same bytes).
$(BIN)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e .
	touch $@

$(BIN)/.installed-test: $(BIN)/.installed
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

venv: $(BIN)/.installed
	@bash scripts/install_bubblewrap.sh || echo "warning: no usable bubblewrap: predictors can only run with --no-sandbox"

data: venv
	$(BIN)/gapbench data prepare

zoo: data
	$(BIN)/gapbench zoo build $(ZOO) --root $(ZOO_DIR) --workers $(WORKERS)
	$(BIN)/gapbench zoo info $(ZOO_DIR)

evaluate: zoo
ifeq ($(strip $(PREDICTOR)),)
	$(BIN)/gapbench evaluate --zoo $(ZOO_DIR) --workers $(WORKERS)
else
	$(BIN)/gapbench evaluate --zoo $(ZOO_DIR) --workers $(WORKERS) --predictor $(PREDICTOR)
endif

# The official board: the public zoo (per-model answers published) and its held-out twin
# (needs the maintainers' salt: $$GAPBENCH_HELDOUT_SALT or ../shared/heldout-salt.txt).
publish: data
	$(BIN)/gapbench zoo build $(PUBLIC) --root zoos/$(PUBLIC) --workers $(WORKERS)
	$(BIN)/gapbench zoo build $(PUBLIC) --heldout --root zoos/$(PUBLIC)-heldout --workers $(WORKERS)
	$(BIN)/gapbench publish --zoo zoos/$(PUBLIC) --heldout zoos/$(PUBLIC)-heldout --workers $(WORKERS)

score: venv
	$(BIN)/gapbench score --zoo $(ZOO_DIR)

leaderboard: venv
	$(BIN)/gapbench leaderboard

venv-test: venv $(BIN)/.installed-test

lint: venv-test
	$(BIN)/ruff check model_zoo predictors benchmark tests

test: venv-test lint
	$(BIN)/python -m pytest -q -ra tests

bench: venv-test
	$(BIN)/python -m benchmark.bench

clean-results:
	rm -rf results mlflow.db
