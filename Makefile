# takeout — every task a developer or CI runs. `make help` lists them.
.DEFAULT_GOAL := help
SHELL := bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
export VIRTUAL_ENV := $(abspath $(VENV))
# podman/buildah read this instead of /etc (runtime runc, ulimits a VM's root may set)
export CONTAINERS_CONF := $(abspath containers/containers.conf)

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip
	$(BIN)/python -m pip install -q "maturin>=1.5,<2" "uv>=0.4"
	touch $@

# The dependencies and the extras `install` puts in, without building the extension: enough for
# ruff and for mypy (which reads the extension's types from `_core.pyi`), and the same packages
# mypy sees after `install` (Ray's stubs decide which `type: ignore`s are used).
$(VENV)/.deps: $(VENV)/.created pyproject.toml
	$(BIN)/uv pip install -q --python $(PY) -r pyproject.toml --extra test --extra ray
	touch $@

.PHONY: install
install: $(VENV)/.created ## build the extension (release) into .venv with the test and ray extras
	$(BIN)/maturin develop --release --uv --extras test,ray -q

.PHONY: build-dev
build-dev: $(VENV)/.created ## build the extension in debug mode (compiles in a fraction of the time)
	$(BIN)/maturin develop --uv --extras test,ray -q

.PHONY: demo
demo: install ## the main job on the shipped example
	$(PY) examples/demo.py

.PHONY: lint
lint: lint-rust lint-python stubtest ## every check of the code, without running it

.PHONY: lint-rust
# clippy builds takeout-py, whose pyo3 build script runs $$VIRTUAL_ENV's interpreter: the venv
# must exist first (a fresh clone has none).
lint-rust: $(VENV)/.created ## rustfmt and clippy
	cargo fmt --all -- --check
	PYO3_PYTHON=$(abspath $(PY)) cargo clippy --workspace --all-targets -- -D warnings

.PHONY: lint-python
lint-python: $(VENV)/.deps ## ruff and mypy (no extension build needed)
	$(BIN)/ruff check python tests bench examples containers fuzz soak .ci
	$(BIN)/ruff format --check python tests bench examples containers fuzz soak .ci
	$(BIN)/mypy python/takeout

.PHONY: stubtest
stubtest: install ## `_core.pyi` against the built extension
	$(PY) -m mypy.stubtest takeout._core --ignore-missing-stub

.PHONY: format
format: $(VENV)/.created ## apply rustfmt and ruff
	cargo fmt --all
	$(BIN)/ruff check --fix python tests bench examples containers fuzz soak .ci
	$(BIN)/ruff format python tests bench examples containers fuzz soak .ci

.PHONY: base-image
base-image: ## the Debian base image of the container tests (mmdebstrap; kept in podman)
	$(PYTHON) containers/base_image.py

# takeout-py's tests embed the venv's interpreter: pyo3 links its libpython, which the test
# binary then loads from the interpreter's LIBDIR.
.PHONY: test-rust
test-rust: $(VENV)/.created ## cargo tests: the pure-Rust core, and takeout-py with a real interpreter
	PYO3_PYTHON=$(abspath $(PY)) \
	LD_LIBRARY_PATH="$$($(PY) -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH}" \
	cargo test --workspace

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

SOAK_SECONDS ?= 600
.PHONY: soak
soak: install ## keep-alive clients on loopback for SOAK_SECONDS: requests, errors, memory slope
	$(PY) soak/run.py --seconds $(SOAK_SECONDS)

.PHONY: soak-ci
soak-ci: install ## the short soak CI makes (10 s; the slope is reported, not judged)
	$(PY) soak/run.py --seconds 10

.PHONY: test-fast
test-fast: build-dev ## pytest without the slow tests, on a debug build
	$(PY) -m pytest -q -m "not slow"

.PHONY: test-pythons
test-pythons: install ## the core suites on CPython 3.9-3.13, each in a venv holding the abi3 wheel
	$(PY) .ci/pythons.py

.PHONY: test
test: lint test-rust test-python test-pythons fuzz-ci soak-ci ## everything CI runs

.PHONY: bench
bench: install ## benchmarks; ratio tables on stdout
	$(BIN)/uv pip install -q --python $(PY) -r pyproject.toml --extra bench
	$(PY) bench/deps.py
	$(PY) bench/bundle.py
	$(PY) bench/notebook.py
	$(PY) bench/serve.py
	$(PY) bench/batch.py
	$(PY) bench/export.py
