# bankstream's one task runner. The README's two commands are `make demo` and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: help setup demo test test-quick lint bench bench-check bench-quick-baseline bench-check-quick stack-up stack-down stack-status

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

test-quick: setup  ## the unit tier alone (no services; under a minute: two workers)
	$(BIN)/pytest -m "not slow and not integration" -n 2 $(PYTEST_ARGS)

# The regression check compares each benchmark's fastest round (min: the least noisy figure on a
# shared machine) with the baseline's and fails beyond this tolerance.
BENCH_TOLERANCE ?= min:50%
BENCH_RUN := $(BIN)/pytest benchmarks --benchmark-enable --benchmark-only \
	--benchmark-columns=min,median,max,rounds

bench: setup  ## time every benchmark and save the run as the baseline (.benchmarks)
	$(BENCH_RUN) --benchmark-save=baseline $(PYTEST_ARGS)

bench-check: setup  ## time every benchmark, compare with the last `make bench`, fail beyond BENCH_TOLERANCE
	$(BENCH_RUN) --benchmark-compare --benchmark-compare-fail=$(BENCH_TOLERANCE) $(PYTEST_ARGS)

bench-quick-baseline: setup  ## save the ratios CI checks (benchmarks/baseline.json, committed)
	$(BIN)/python -m benchmarks.check --save

bench-check-quick:  ## hot paths against their ceilings, side by side, vs the baseline's ratios (CI)
	$(BIN)/python -m benchmarks.check --tolerance 30%

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
