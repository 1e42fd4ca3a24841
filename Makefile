# auction-hub: `make up` runs the hub on this machine, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up test lint bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

up: $(STAMP)
	$(BIN)/auction-hub up

test: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

bench: $(STAMP)
	$(BIN)/python bench/capture.py
	$(BIN)/python bench/freshness.py
	$(BIN)/python bench/index_commit.py
	$(BIN)/python bench/snapshot.py
	$(BIN)/python bench/search.py
	$(BIN)/python bench/bulk_upload.py --runs 5
	$(BIN)/python bench/api_write.py
	$(BIN)/python bench/bidding.py
	$(BIN)/python bench/erp_freshness.py
	$(BIN)/python bench/moderation.py

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
