# Lumos: `make demo` and `make test` are the two commands a new user needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lumos-installed

.PHONY: demo test test-fast docs bench lint format clean venv

# Create .venv if missing and install lumos with everything it needs; quick when already up to date.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[all,dev]"
	@touch $(STAMP)

venv: $(STAMP)
$(VENV): $(STAMP)

demo: $(STAMP)
	$(BIN)/lumos demo --out runs/demo --overwrite

# The whole suite, and every code example in the library's docstrings.
test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider --timeout=900 --doctest-modules tests src/lumos

# The suite without the tests marked slow (the install, the examples, multi-process runs).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider --timeout=900 -m "not slow" tests

# The documentation site (site/), strict: a broken link or reference fails the build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# Every CPU benchmark at full size (several minutes each); the gpu_* checks need CUDA and run by hand.
bench: $(STAMP)
	@mkdir -p runs/bench
	@for f in $(filter-out benchmarks/gpu_%,$(wildcard benchmarks/*.py)); do \
	  n=$$(basename $$f .py); echo "== $$n"; \
	  $(BIN)/python $$f --json runs/bench/$$n.json || exit 1; \
	done

# ruff (style, mccabe complexity <= 15) and basedpyright (pyright's basic mode, bundled: no download) on the library,
# with no baseline: any type error fails.
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/basedpyright --pythonpath $(BIN)/python

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks examples
	$(BIN)/ruff check --fix src tests benchmarks examples

clean:
	rm -rf runs site .pytest_cache build *.egg-info
