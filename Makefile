# gapbench: `make evaluate` and `make test` do all the set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
ZOO ?= mini
ZOO_DIR ?= zoos/$(ZOO)
WORKERS ?= 2
PREDICTOR ?=
# Offline machines read the raw data from a mirror; ../shared/data is used when it exists.
GAPBENCH_DATA_MIRROR ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
export GAPBENCH_DATA_MIRROR
export MPLBACKEND := Agg

.PHONY: venv data zoo evaluate score leaderboard test test-fast bench clean-results help

help:
	@echo "make evaluate [PREDICTOR=path.py]  set up, build/reuse the $(ZOO) zoo, evaluate, score, board"
	@echo "make test                          the test suite (builds the micro zoo)"
	@echo "make leaderboard                   re-render leaderboards/ from the score tables"
	@echo "make bench                         speed/memory benchmarks (ratios measured in one run)"

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

venv: $(BIN)/.installed

data: venv
	$(BIN)/gapbench data prepare

zoo: data
	$(BIN)/gapbench zoo build $(ZOO) --root $(ZOO_DIR) --workers $(WORKERS)
	$(BIN)/gapbench zoo info $(ZOO_DIR)

evaluate: zoo
ifeq ($(strip $(PREDICTOR)),)
	$(BIN)/gapbench evaluate --zoo $(ZOO_DIR) --workers $(WORKERS) --publish
else
	$(BIN)/gapbench evaluate --zoo $(ZOO_DIR) --workers $(WORKERS) --predictor $(PREDICTOR)
endif

score: venv
	$(BIN)/gapbench score --zoo $(ZOO_DIR)

leaderboard: venv
	$(BIN)/gapbench leaderboard

test: venv
	$(BIN)/python -m pytest -q -ra tests

bench: venv
	$(BIN)/python -m benchmark.bench

clean-results:
	rm -rf results mlflow.db
