# Magpie: two commands do all the set-up on a fresh machine.
#   make run   installs what is needed, starts the embedded infrastructure, the carrier simulator and all
#              services, runs a demo campaign, and keeps serving until Ctrl-C.
#   make test  installs what is needed and runs the whole suite (lint + unit + integration + end-to-end).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PACKAGES := libs/magpie-common deploy/embedded $(patsubst %/pyproject.toml,%,$(wildcard services/*/pyproject.toml))
STAMP := $(VENV)/.installed
PROTOS := $(wildcard proto/magpie/v1/*.proto)
GEN_DIR := libs/magpie-common
GEN_STAMP := $(GEN_DIR)/magpie/v1/.generated

.PHONY: install system-deps proto run test test-unit lint fmt docs bench infra-up infra-down infra-reset clean

install: $(STAMP) $(GEN_STAMP)

system-deps:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "installing redis-server (Debian package)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq redis-server >/dev/null; }

$(STAMP): requirements.txt requirements-dev.txt $(addsuffix /pyproject.toml,$(PACKAGES)) | system-deps
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements-dev.txt
	$(PIP) install -q --no-deps $(addprefix -e ,$(PACKAGES))
	@touch $@

# Python code for every event schema, generated once for all services from proto/.
$(GEN_STAMP): $(PROTOS) $(STAMP)
	$(PY) -m grpc_tools.protoc -I proto --python_out=$(GEN_DIR) --pyi_out=$(GEN_DIR) $(PROTOS)
	@touch $@

proto: $(GEN_STAMP)

run: install
	$(PY) -m magpie_devstack.run

test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest -q

test-unit: install
	$(VENV)/bin/pytest -q -m "not integration and not e2e"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

docs: install
	$(PY) -m magpie_gateway.reference docs/api.md

# make bench BENCH_ARGS="--recipients 100000 --single-recipients 5000" (see python -m magpie_devstack.bench -h)
BENCH_ARGS ?=
bench: install
	$(PY) -m magpie_devstack.bench $(BENCH_ARGS)

infra-up: install
	$(VENV)/bin/magpie-infra up --profile run

infra-down: install
	$(VENV)/bin/magpie-infra down --profile run

infra-reset: install
	$(VENV)/bin/magpie-infra reset --profile run

clean:
	-$(VENV)/bin/magpie-infra down --profile run
	-$(VENV)/bin/magpie-infra down --profile test
	rm -rf .state $(VENV)
