# takeout — every task a developer or CI runs. `make help` lists them.
.DEFAULT_GOAL := help
SHELL := bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
export VIRTUAL_ENV := $(abspath $(VENV))

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip
	$(BIN)/python -m pip install -q "maturin>=1.5,<2" "uv>=0.4"
	touch $@

.PHONY: install
install: $(VENV)/.created ## build the extension (release) into .venv with the test and ray extras
	$(BIN)/maturin develop --release --uv --extras test,ray -q

.PHONY: demo
demo: install ## the main job on the shipped example
	$(PY) examples/demo.py

.PHONY: lint
lint: install ## rustfmt, clippy, ruff, stubtest
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(BIN)/ruff check python tests bench examples
	$(BIN)/ruff format --check python tests bench examples
	$(PY) -m mypy.stubtest takeout._core --ignore-missing-stub

.PHONY: format
format: $(VENV)/.created ## apply rustfmt and ruff
	cargo fmt --all
	$(BIN)/ruff check --fix python tests bench examples
	$(BIN)/ruff format python tests bench examples

.PHONY: test-rust
test-rust: ## cargo tests of the pure-Rust core
	cargo test --workspace --exclude takeout-py

.PHONY: test-python
test-python: install ## pytest (real kernels, venvs and servers)
	$(PY) -m pytest -q

.PHONY: test
test: lint test-rust test-python ## everything CI runs

.PHONY: bench
bench: install ## benchmarks; ratio tables on stdout
	$(PY) bench/deps.py
	$(PY) bench/bundle.py
	$(PY) bench/notebook.py
	$(PY) bench/serve.py
