# tracker: `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 5000
HOST   ?= 127.0.0.1
export TRACKER_INSTANCE_PATH ?= $(CURDIR)/instance

# Debian's packages the app needs (WeasyPrint's layout of the casebook and the pharmacy log:
# Pango, HarfBuzz's subsetter; the DejaVu fonts, which Typst's compliance PDF uses too) and
# the ones its tests add (Chromium for the browser tests, pdftoppm to look at the
# PDF, PostgreSQL's binaries for the throwaway cluster of the restart test).
RUN_PACKAGES  := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core
TEST_PACKAGES := $(RUN_PACKAGES) chromium poppler-utils postgresql
# Pinned so a fresh machine builds the venv with the pip the lock was tested with.
PIP_VERSION := 26.3
UV_VERSION  := 0.13.9

.DEFAULT_GOAL := help
.PHONY: help install install-test system-packages system-packages-test run demo test test-fast \
        lint format typecheck bench lock clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-20s %s\n", $$1, $$2}'

# Installs the missing packages as root; anyone else is told the one command to run.
define ensure_debian_packages
	@if ! command -v dpkg-query >/dev/null 2>&1; then \
	  echo "note: not a Debian system; make sure these are installed: $(1)" >&2; exit 0; fi; \
	missing=""; \
	for package in $(1); do \
	  dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q 'install ok installed' \
	    || missing="$$missing $$package"; \
	done; \
	$(PYTHON) -c 'import ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" -ne 0 ]; then \
	    echo "Missing Debian packages:$$missing" >&2; \
	    echo "Run: sudo apt-get install -y --no-install-recommends$$missing" >&2; exit 1; \
	  fi; \
	  echo "Installing Debian packages:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

system-packages: ## Install the Debian packages the app needs (as root), when missing
	$(call ensure_debian_packages,$(RUN_PACKAGES))

system-packages-test: ## Install the Debian packages the app and its tests need, when missing
	$(call ensure_debian_packages,$(TEST_PACKAGES))

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet pip==$(PIP_VERSION)

# The Python dependencies come from the lock files (exact versions and hashes); the project
# itself is installed editable on top, without resolving anything again.
$(VENV)/.installed: requirements.lock pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $@

$(VENV)/.installed-test: requirements-test.lock pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements-test.lock
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $@ $(VENV)/.installed

install: system-packages $(VENV)/.installed ## Make .venv and install the app (from requirements.lock)

install-test: system-packages-test $(VENV)/.installed-test ## Make .venv and install the app with the test extras

lock: | $(BIN)/python ## Refresh requirements.lock and requirements-test.lock from pyproject.toml
	$(BIN)/pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	  --extra test --no-header -o requirements-test.lock pyproject.toml
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	  --constraint requirements-test.lock --no-header -o requirements.lock pyproject.toml

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

lint: install-test ## ruff check, ruff format --check, the import contracts, mypy --strict on the package
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

format: install-test ## Apply ruff's formatting and fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install ## Seed bench100/bench1k/bench10k on PostgreSQL (BENCH_POSTGRES) once, run every benchmark
	$(BIN)/python -m benchmarks.run $(if $(BENCH_POSTGRES),--postgres $(BENCH_POSTGRES))

clean: ## Remove the virtualenv, caches and test artifacts (keeps instance/)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache artifacts
