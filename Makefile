# Lumos: `make demo` and `make test` are the two commands a new user needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lumos-installed

.PHONY: demo test test-fast bench lint format clean venv

# Create .venv if missing and install lumos with everything it needs; quick when already up to date.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev,vision,hf,sandbox]"
	@touch $(STAMP)

venv: $(STAMP)
$(VENV): $(STAMP)

demo: $(STAMP)
	$(BIN)/lumos demo --out runs/demo --overwrite

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider --timeout=900

# Every CPU benchmark at full size (several minutes each); the gpu_* checks need CUDA and run by hand.
bench: $(STAMP)
	@mkdir -p runs/bench
	@for f in $(filter-out benchmarks/gpu_%,$(wildcard benchmarks/*.py)); do \
	  n=$$(basename $$f .py); echo "== $$n"; \
	  $(BIN)/python $$f --json runs/bench/$$n.json || exit 1; \
	done

# ruff (style, mccabe complexity <= 15) and basedpyright (pyright's basic mode, bundled: no download) on the library;
# .basedpyright/baseline.json lists the type errors not yet fixed (each new one fails; fixed ones leave the baseline
# with `$(BIN)/basedpyright --pythonpath $(BIN)/python --writebaseline`).
lint: $(STAMP)
	$(BIN)/ruff check src tests $(wildcard benchmarks)
	$(BIN)/basedpyright --pythonpath $(BIN)/python

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

clean:
	rm -rf runs .pytest_cache build *.egg-info
