# The two set-up commands of the README: `make run` and `make test`.
# Each creates .venv when it is missing and installs what it needs into it.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install -q --disable-pip-version-check

.PHONY: run test demo lint install dev clean

run: $(VENV)/.run-installed  ## install and run the main job and the web UI (it prints the URL) on SQLite in ./data; one Ctrl-C stops both
	$(BIN)/ufarchive db upgrade
	$(BIN)/ufarchive schedule --web

test: $(VENV)/.dev-installed  ## install and run lint, types and the test suite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

demo: $(VENV)/.run-installed  ## crawl the bundled demo sites (local, no internet) into data/demo/, then verify
	$(BIN)/python -m tests.demo

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

install: $(VENV)/.run-installed
dev: $(VENV)/.dev-installed

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "ufarchive needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip

$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(PIP) -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[dev]'
	touch $@ $(VENV)/.run-installed

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
