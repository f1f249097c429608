# titan-connector — common tasks. `make help` lists them.
SHELL := /bin/bash
CARGO ?= cargo
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TOOLS := .tools
NPM ?= npm
BIN := target/debug

.DEFAULT_GOAL := help
.PHONY: help build demo test test-rust test-interop lint venv tools sim clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## Build the connector and the simulator
	$(CARGO) build --bins

$(VENV)/.ready: tests/interop/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r tests/interop/requirements.txt
	touch $@

venv: $(VENV)/.ready ## Python venv with the readers used by the interop tests and the demo

$(TOOLS)/.ready: tests/support/npm/package.json tests/support/npm/package-lock.json
	rm -rf $(TOOLS)
	mkdir -p $(TOOLS)
	cp tests/support/npm/package.json tests/support/npm/package-lock.json $(TOOLS)/
	cd $(TOOLS) && $(NPM) ci --no-audit --no-fund --loglevel=error
	touch $@

tools: $(TOOLS)/.ready ## Node tools the store tests start (Azurite), pinned by tests/support/npm

demo: build venv ## Simulator → connector → ./out, then query the result with DuckDB
	PY=$(PY) BIN=$(BIN) examples/demo.sh

lint: ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

test-rust: venv tools ## Unit and end-to-end tests (simulator, moto and Azurite on loopback)
	$(CARGO) test --all-targets

test-interop: build venv ## DuckDB, pyarrow and polars read our output
	$(PY) -m pytest -q tests/interop

test: lint test-rust test-interop ## Everything CI runs

sim: build ## Run the simulator with the demo scenario in the foreground
	$(BIN)/titan-sim --scenario examples/scenarios/demo.toml

clean: ## Remove build output, the venv and ./out
	$(CARGO) clean
	rm -rf $(VENV) $(TOOLS) out
