# The two commands a newcomer runs: `make demo` and `make test`. Both set up .venv from this repository's own files.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HELMS := $(BIN)/helm3 $(BIN)/helm4
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: setup demo test golden chart bench clean

setup: $(STAMP) $(HELMS)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(HELMS): scripts/fetch-helm | $(BIN)/python
	$(BIN)/python scripts/fetch-helm $(BIN)

demo: setup
	helm-rdma template llama405b --preset h100
	helm-rdma plan llama405b --preset gpu4

test: setup
	$(BIN)/ruff check generator tests bench charts/vllm-rdma/files
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

# Refresh charts/vllm-rdma's generated files (values.yaml, values.schema.json, Chart.yaml, README.md).
chart: setup
	$(BIN)/python -m helm_rdma.chart_sync

# Refresh tests/golden after an intended change to the chart or the presets.
golden: setup
	HELM_RDMA_UPDATE_GOLDEN=1 $(BIN)/python -m pytest -q tests/test_golden.py

bench: setup
	$(BIN)/python bench/template_speed.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
