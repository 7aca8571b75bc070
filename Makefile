# The two commands a new user needs are `make up` and `make test`; see README.md.
SHELL := /bin/bash
STACK ?= dev
export STACK
PYTEST_ARGS ?=

.PHONY: toolchain up outputs test down bench

toolchain:
	@bash toolchain/install.sh

up: toolchain
	@scripts/stack.sh up

outputs:
	@scripts/stack.sh outputs

# Brings the stack up if it is not (or repairs it), then runs the whole suite.
test: toolchain
	@scripts/stack.sh ensure
	@source toolchain/env.sh && mkdir -p reports && \
		python -m pytest --junitxml=reports/junit.xml $(PYTEST_ARGS) tests

down:
	@scripts/stack.sh down

bench: toolchain
	@source toolchain/env.sh && python -m bench
