"""The docker-runtime suite: run by `make test` as its own stage, against the `docker` stack (its own
ports, beside the process runtime's dev stack) on a real Docker engine. Every test here fails, naming
what to run, when that stack is not on the docker runtime."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import stack_outputs as out
from providers.docker_resources import LABEL_STACK, engine_client
from tests.support.stack import StackOutputs

DOCKER_STACK = "docker"
LAST_MODULE = "test_docker_destroy.py"
"""It destroys the stack and brings it up again: every other test runs before it."""


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: Path(str(item.fspath)).name == LAST_MODULE)


@pytest.fixture(scope="session")
def docker_stack(stack: StackOutputs) -> StackOutputs:
    """The live stack, checked to be on the docker runtime."""
    if stack[out.RUNTIME] != "docker":
        pytest.fail(f"stack {stack.name} runs on {stack[out.RUNTIME]}, not docker: run `STACK={DOCKER_STACK} make test-docker`")
    return stack


@pytest.fixture(scope="session")
def engine(docker_stack: StackOutputs) -> Iterator[Any]:
    """The Docker daemon the stack runs on (the one its containers' state names)."""
    from testkit.stack import toolchain_env

    host = toolchain_env().get("DOCKER_HOST", "")
    if not host:
        pytest.fail("DOCKER_HOST is not set: run the docker suite through `make test-docker` (it starts the engine)")
    client = engine_client(host)
    yield client
    client.close()


def stack_label(stack: StackOutputs) -> str:
    return f"{LABEL_STACK}=cdcstack-{stack.name}"
