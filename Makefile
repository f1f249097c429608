# titan-connector — common tasks. `make help` lists them.
SHELL := /bin/bash
CARGO ?= cargo
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TOOLS := .tools
AIRFLOW_VENV := .venv-airflow
NPM ?= npm
BIN := target/debug

.DEFAULT_GOAL := help
.PHONY: help build test-bins demo test test-rust test-interop test-airflow lint venv tools sim bench soak fuzz clean

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

# The binaries as `cargo test` builds them (its integration tests need them too). A plain
# `cargo build` after `cargo test` compiles ~20 dependencies again with other features
# (dev-dependencies unify features only into test builds): 7 minutes of CI for nothing.
test-bins:
	$(CARGO) test --all-targets --no-run --quiet

test-interop: test-bins venv ## DuckDB, pyarrow and polars read our output
	$(PY) -m pytest -q tests/interop

$(AIRFLOW_VENV)/.ready: tests/airflow/requirements.txt tests/airflow/constraints.txt
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-compile \
	  -r tests/airflow/requirements.txt -c tests/airflow/constraints.txt
	touch $@

test-airflow: test-bins $(AIRFLOW_VENV)/.ready ## Airflow DAG, k8s Job, examples/Makefile vs the simulator
	$(AIRFLOW_VENV)/bin/python -m pytest -q tests/airflow

test: lint test-rust test-interop ## Lint, unit, end-to-end, store and reader tests (CI also runs test-airflow)

sim: build ## Run the simulator with the demo scenario in the foreground
	$(BIN)/titan-sim --scenario examples/scenarios/demo.toml

bench: venv ## Side by side with DuckDB and polars (shapes products, wide, scraped; BENCH_BIG=1 adds 10M rows)
	$(CARGO) build --release --bins --examples
	$(PY) benches/compare/run.py

# The fault soak of `make test` (52 executions) at a larger size.
SOAK_EXECUTIONS ?= 200

soak: ## The fault soak at SOAK_EXECUTIONS executions (default 200): every row lands exactly once
	SOAK_EXECUTIONS=$(SOAK_EXECUTIONS) $(CARGO) test --test it -- --exact \
	  faults::a_fault_soak_ends_with_the_source_row_for_row --nocapture

# Fuzzing: cargo-fuzz drives libFuzzer, which needs nightly-only rustc flags (sanitizer
# coverage); RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them. New corpus entries go
# to fuzz/corpus/<target> (ignored by git); fuzz/seeds/<target> are the committed seeds;
# a crash lands in fuzz/artifacts/<target>/ and fails the target.
FUZZ_SECONDS ?= 30
FUZZ_TARGETS := decode_csv decode_json config_toml schema_json
FUZZ_TARGET_DIR ?= fuzz/target
CARGO_FUZZ_ROOT := $(TOOLS)/cargo-fuzz
CARGO_FUZZ := $(CARGO_FUZZ_ROOT)/bin/cargo-fuzz

$(CARGO_FUZZ):
	$(CARGO) install cargo-fuzz --locked --version 0.13.2 --root $(CARGO_FUZZ_ROOT)

fuzz: $(CARGO_FUZZ) ## Run each fuzz target (CSV/JSON decoders, config, schema) for FUZZ_SECONDS (default 30)
	@set -e; for t in $(FUZZ_TARGETS); do \
	  echo "== fuzz $$t for $(FUZZ_SECONDS)s"; \
	  mkdir -p fuzz/corpus/$$t; \
	  RUSTC_BOOTSTRAP=1 $(CARGO_FUZZ) fuzz run --debug-assertions --target-dir $(FUZZ_TARGET_DIR) \
	    $$t fuzz/corpus/$$t fuzz/seeds/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=3072 -max_len=65536; \
	done

clean: ## Remove build output, the venv and ./out
	$(CARGO) clean
	rm -rf $(VENV) $(TOOLS) $(AIRFLOW_VENV) out
