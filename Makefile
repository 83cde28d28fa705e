# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.docs-installed

.PHONY: demo test test-all bench docs docs-serve dist clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/opendicke figure3 --out results/figure3

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(DOCS_STAMP)
	$(BIN)/python -m pytest -q -m ''

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_batched_evolve.py --large
	$(BIN)/python benchmarks/bench_figure3.py
	$(BIN)/python benchmarks/bench_quantum.py
	$(BIN)/python benchmarks/bench_quantum_scale.py

# The documentation site: the docs extra goes into the same .venv; strict mode (mkdocs.yml), any warning fails.
$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test,docs,release]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --clean

docs-serve: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs serve --strict --dev-addr 127.0.0.1:8000

# Wheel and sdist into dist/, then installed into a fresh venv that runs `opendicke --help` and the tests.
dist: $(STAMP)
	$(BIN)/python -m pip install --quiet 'build>=1.2'
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	PYTHON=$(PYTHON) bash tools/check_dist.sh dist

clean:
	rm -rf $(VENV) results site dist .pytest_cache
