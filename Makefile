# Two commands on a fresh machine:  `make demo`  and  `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build on these machines; set TORCH= to keep a torch you installed yourself (e.g. CUDA).
TORCH ?= torch==2.13.0

.PHONY: install demo test test-all lint bench clean clients

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	@if [ -n "$(TORCH)" ] && ! $(BIN)/python -c "import torch" 2>/dev/null; then \
		echo "installing $(TORCH)"; $(BIN)/python -m pip install -q "$(TORCH)"; fi
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/shoprec demo

# Default test run: everything except tests marked slow. Real-data tests skip (with a reason)
# when ../shared/data is absent; database tests need the local PostgreSQL/MariaDB/Redis.
test: install
	$(BIN)/python -m pytest -q -m "not slow"

test-all: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

# Regenerate what the OpenAPI schema generates (clients/openapi.json, the Python client's models, the TypeScript
# client's types); tests/client/test_generated.py fails while any of them is stale.
clients: install
	cd clients/typescript && npm ci --no-audit --no-fund --silent
	$(BIN)/python -m shoprec.api.openapi_dump

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
