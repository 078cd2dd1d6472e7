# bankstream's one task runner. The README's two commands are `make demo` and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: help setup demo test lint bench stack-up stack-down stack-status

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

setup:  ## install everything (system packages, .venv, the stack's jars); idempotent
	scripts/setup.sh

DEMO_ARGS ?= retail-day --rate 400 --duration 40s --fresh

demo: setup  ## install, start the local stack, run a short real scenario end to end and report
	$(BIN)/bankstream stack up
	$(BIN)/bankstream run $(DEMO_ARGS)

test: setup lint  ## install, lint, then run every test against real services
	scripts/compose-plugin.sh
	$(BIN)/pytest $(PYTEST_ARGS)

bench: setup  ## time the benchmarks (pytest-benchmark); reports are saved under .benchmarks
	$(BIN)/pytest benchmarks --benchmark-enable --benchmark-only --benchmark-autosave \
		--benchmark-columns=min,median,max,rounds $(PYTEST_ARGS)

lint:  ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

stack-up: setup  ## start the local stack (Kafka, MongoDB-wire server, Prometheus)
	$(BIN)/bankstream stack up

stack-down:  ## stop the local stack
	$(BIN)/bankstream stack down

stack-status:  ## show the local stack
	$(BIN)/bankstream stack status
