# Every target works from a fresh clone: the venv is created and filled from the project's files.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test lint run demo bench loadtest openapi clean

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

run: $(STAMP)
	$(BIN)/stsvend local up

demo: $(STAMP)
	$(BIN)/stsvend local demo

BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -r requirements.txt -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench

loadtest: $(STAMP)
	$(BIN)/python -m tests.e2e.loadtest --vends 2000 --clients 16

openapi: $(STAMP)
	$(BIN)/python -m stsvend.checkout.openapi

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
