# The two commands a new user needs are `make up` and `make test`; see README.md.
SHELL := /bin/bash
STACK ?= dev
export STACK
PYTEST_ARGS ?=

.PHONY: toolchain up outputs test test-docker down bench

toolchain:
	@bash toolchain/install.sh

up: toolchain
	@scripts/stack.sh up

outputs:
	@scripts/stack.sh outputs

# Brings the stack up if it is not (or repairs it), then runs the whole suite: the process runtime's
# on the dev stack, then the docker runtime's as a stage of its own (both run; either failing fails it).
test: toolchain
	@scripts/stack.sh ensure
	@source toolchain/env.sh && mkdir -p reports && \
		python -m pytest --junitxml=reports/junit.xml $(PYTEST_ARGS) --ignore=tests/docker tests; \
		status=$$?; started=$$(date +%s); $(MAKE) --no-print-directory test-docker || status=1; \
		echo "docker stage: $$(( $$(date +%s) - started ))s"; exit $$status

# The docker runtime's suite on its own stack (Pulumi.docker.yaml: its own ports, beside dev), on the
# user's Docker daemon or the project's own; `make down STACK=docker` removes it and stops that engine.
test-docker: toolchain
	@STACK=docker scripts/stack.sh ensure
	@source toolchain/env.sh && DOCKER_HOST=$$(scripts/dockerd.sh host) && export DOCKER_HOST && mkdir -p reports && \
		STACK=docker python -m pytest --junitxml=reports/junit-docker.xml $(PYTEST_ARGS) tests/docker

down:
	@scripts/stack.sh down

bench: toolchain
	@source toolchain/env.sh && python -m bench
