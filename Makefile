# tracker: `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 5000
HOST   ?= 127.0.0.1
export TRACKER_INSTANCE_PATH ?= $(CURDIR)/instance

.DEFAULT_GOAL := help
.PHONY: help install install-test run demo test test-fast lint format typecheck bench clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]"
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed ## Make .venv and install the app

install-test: $(VENV)/.installed-test ## Make .venv and install the app with the test extras

run: install ## Migrate the SQLite database, load the demo once, serve http://$(HOST):$(PORT)
	$(BIN)/tracker db upgrade
	$(BIN)/tracker demo
	$(BIN)/tracker run --host $(HOST) --port $(PORT)

demo: install ## Load the demo study (once) and print the demo logins
	$(BIN)/tracker db upgrade
	$(BIN)/tracker demo

test: install-test ## Run the whole suite (SQLite; PostgreSQL and Chromium when configured)
	$(BIN)/pytest

test-fast: install-test ## Unit tests only (no database, no browser)
	$(BIN)/pytest tests/unit -q

lint: install-test ## ruff check, ruff format --check, mypy --strict on the protocol core
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict --follow-imports=silent tracker/protocol

format: install-test ## Apply ruff's formatting and fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install ## Seed bench100/bench1k/bench10k on PostgreSQL (BENCH_POSTGRES) once, run every benchmark
	$(BIN)/python benchmarks/run.py $(if $(BENCH_POSTGRES),--postgres $(BENCH_POSTGRES))

clean: ## Remove the virtualenv, caches and test artifacts (keeps instance/)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache artifacts
