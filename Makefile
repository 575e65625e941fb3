# The two commands a newcomer runs: `make demo` and `make test`. Both set up .venv from this repository's own files:
# `make demo` only what the plugin runs (the hash-locked runtime of locks/runtime.txt and one helm), `make test` the
# development tools on top (both helms, the OCI SDK, CPU torch, the linters; scripts/test-tools adds Debian tools and
# the editor's YAML language server, from tests/editor/package-lock.json).
PYTHON ?= python3
# The Python that makes the venv, found before .venv/bin goes first on PATH.
HOST_PYTHON := $(shell command -v $(PYTHON))
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.runtime
UV_VERSION := 0.13.8
UV := $(VENV)/tools/bin/uv
STAMP := $(VENV)/.installed
HELMS := $(BIN)/helm3 $(BIN)/helm4
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: setup runtime demo test golden chart docs bench clean provisioner-image lock

setup: $(STAMP) $(HELMS)

runtime: $(RUNTIME) $(BIN)/helm4

$(BIN)/python:
	$(HOST_PYTHON) -m venv --without-pip $(VENV)

# uv installs the locked runtime in seconds where pip takes a minute; it lives beside the venv, not in it.
$(UV): | $(BIN)/python
	$(HOST_PYTHON) -m pip install --quiet --disable-pip-version-check --target $(VENV)/tools 'uv==$(UV_VERSION)'

$(RUNTIME): pyproject.toml locks/runtime.txt | $(UV)
	$(UV) pip install --quiet --python $(BIN)/python --require-hashes -r locks/runtime.txt
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

# The development tools come with pip's resolver, which reads this machine's pip configuration (local wheels).
$(STAMP): $(RUNTIME) pyproject.toml
	$(BIN)/python -m pip --version > /dev/null 2>&1 || $(BIN)/python -m ensurepip --default-pip > /dev/null
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

$(BIN)/helm4: scripts/fetch-helm | $(BIN)/python
	$(HOST_PYTHON) scripts/fetch-helm $(BIN) helm4

$(BIN)/helm3: scripts/fetch-helm | $(BIN)/python
	$(HOST_PYTHON) scripts/fetch-helm $(BIN) helm3

demo: runtime
	helm-rdma template llama405b --preset h100
	helm-rdma plan llama405b --preset gpu4

test: setup
	scripts/test-tools
	$(BIN)/ruff check generator tests bench charts/vllm-rdma/files
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -n auto

# Refresh charts/vllm-rdma's generated files (values.yaml, values.schema.json, Chart.yaml, README.md).
chart: setup
	$(BIN)/python -m helm_rdma.dev.chart_sync

# Refresh what the click command tree generates: completion.yaml, plugin.yaml's usage and description, and the
# README's command table and CLI reference.
docs: setup
	$(BIN)/python -m helm_rdma.dev.docs

# Refresh tests/golden after an intended change to the chart or the presets.
golden: setup
	HELM_RDMA_UPDATE_GOLDEN=1 $(BIN)/python -m pytest -q tests/test_golden.py

# The chart's OCI hooks run the provisioner image, which no public registry holds. Docker cannot run on the machines
# this project builds on, so this prints the commands that build it and push it to OCIR, for a machine that has
# Docker. OCIR_REGION is the region key (iad, phx, fra, ...); OCIR_NAMESPACE is the tenancy's Object Storage
# namespace (`oci os ns get`); OCIR_USER the OCI user name (federated users: oracleidentitycloudservice/NAME).
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' generator/helm_rdma/__init__.py)
OCIR_REGION ?= iad
OCIR_NAMESPACE ?= TENANCY-NAMESPACE
OCIR_USER ?= USER
PROVISIONER := $(OCIR_REGION).ocir.io/$(OCIR_NAMESPACE)/helm-rdma-provisioner
provisioner-image:
	@echo "# in this checkout, on a machine with Docker (the GPU nodes are x86_64):"
	@echo "docker build --platform linux/amd64 -t $(PROVISIONER):$(VERSION) ."
	@echo "docker login $(OCIR_REGION).ocir.io -u '$(OCIR_NAMESPACE)/$(OCIR_USER)'   # password: an auth token"
	@echo "docker push $(PROVISIONER):$(VERSION)"
	@echo "# a private repository also needs a pull Secret in the release's namespace:"
	@echo "kubectl -n NAMESPACE create secret docker-registry ocir-pull --docker-server=$(OCIR_REGION).ocir.io \\"
	@echo "  --docker-username='$(OCIR_NAMESPACE)/$(OCIR_USER)' --docker-password='AUTH-TOKEN'"
	@echo "# then point the chart at it:"
	@echo "helm rdma install ... --set clusterNetwork.image.repository=$(PROVISIONER) \\"
	@echo "  --set clusterNetwork.image.pullSecrets[0].name=ocir-pull \\"
	@echo "  --set clusterNetwork.image.digest=sha256:...   # the digest docker push printed: the hooks run exactly it"

bench: setup
	$(BIN)/python bench/template_speed.py
	$(BIN)/python bench/download_speed.py
	$(BIN)/python bench/stage_split.py
	$(BIN)/python bench/values_engine.py

# Refresh the hash-locked dependencies the Helm plugin (locks/runtime.txt) and the provisioner image (locks/oci.txt)
# install, after a change to pyproject.toml's dependencies: one universal resolution for CPython 3.10 and newer on every
# platform, every wheel and sdist of each pinned version hashed. Versions already locked are kept unless UPGRADE=1.
# tests/test_locks.py checks the locks against pyproject.toml.
LOCK_ARGS := --universal --python-version 3.10 --generate-hashes --custom-compile-command 'make lock' --quiet
lock: | $(UV)
	$(UV) pip compile pyproject.toml $(LOCK_ARGS) $(if $(UPGRADE),--upgrade) -o locks/runtime.txt
	$(UV) pip compile pyproject.toml --extra oci $(LOCK_ARGS) $(if $(UPGRADE),--upgrade) -o locks/oci.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
