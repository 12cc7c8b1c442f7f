# Every target works from a fresh clone: the venv is created and filled from the project's files.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test lint run demo bench loadtest openapi package-prep client-zipapp terraform-package clean

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.txt stsvend/constants.py
	@echo "Creating $(VENV) and installing stsvend with its development dependencies (pip, once; a minute or two)..."
	$(PYTHON) -m venv $(VENV)
	@# chalice 1.34 requires pip<26.3 (it runs pip to fetch the function's dependencies).
	$(BIN)/pip install --quiet --upgrade 'pip<26.3'
	$(BIN)/pip install --quiet -r requirements.txt -e '.[dev]'
	touch $(STAMP)
	@echo "$(VENV) is ready."

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

# Before `chalice deploy`/`chalice package`: vendor/ with the X-Ray SDK (without botocore) and the
# package's bytecode, compiled by the venv's Python, the version Chalice deploys (docs/deploying.md).
package-prep: $(STAMP)
	$(BIN)/python tools/package_prep.py

# The client as one file, dist/stsvend-client.pyz (docs/client.md): client commands only, for any
# Python >= 3.10 with botocore; bytecode for the Python that builds it.
client-zipapp: $(STAMP)
	$(BIN)/python tools/client_zipapp.py

# The Terraform form of a stage (docs/deploying.md, "The Terraform path"): out/terraform-$(STAGE)/.
STAGE ?= prod
terraform-package: $(STAMP)
	$(BIN)/python tools/terraform_package.py $(STAGE) out/terraform-$(STAGE)

openapi: $(STAMP)
	$(BIN)/python -m stsvend.checkout.openapi

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache vendor
