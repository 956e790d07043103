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
install: $(VENV)/.created ## build the extension (release) into .venv with the test extras
	$(BIN)/maturin develop --release --uv --extras test -q

.PHONY: demo
demo: install ## the main job on the shipped example
	$(PY) examples/demo.py

.PHONY: lint
lint: install ## rustfmt, clippy, ruff, stubtest
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(BIN)/ruff check python tests bench examples fuzz
	$(BIN)/ruff format --check python tests bench examples fuzz
	$(PY) -m mypy.stubtest takeout._core --ignore-missing-stub
	$(BIN)/mypy python/takeout

.PHONY: format
format: $(VENV)/.created ## apply rustfmt and ruff
	cargo fmt --all
	$(BIN)/ruff check --fix python tests bench examples fuzz
	$(BIN)/ruff format python tests bench examples fuzz

.PHONY: test-rust
test-rust: ## cargo tests of the pure-Rust core
	cargo test --workspace --exclude takeout-py

.PHONY: test-python
test-python: install ## pytest (real kernels, venvs and servers)
	$(PY) -m pytest -q

FUZZ_SECONDS ?= 60
.PHONY: fuzz
fuzz: install ## fuzz the pickle scanner, requirement/metadata parsers, manifest reader (FUZZ_SECONDS each)
	$(PY) fuzz/run.py --seconds $(FUZZ_SECONDS)

.PHONY: fuzz-ci
fuzz-ci: install ## the short fuzz run CI makes (5 s per target)
	$(PY) fuzz/run.py --seconds 5

.PHONY: test
test: lint test-rust test-python fuzz-ci ## everything CI runs

.PHONY: bench
bench: install ## benchmarks; ratio tables on stdout
	$(PY) bench/deps.py
	$(PY) bench/bundle.py
	$(PY) bench/notebook.py
	$(PY) bench/serve.py
