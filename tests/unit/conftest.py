"""Fixtures for unit tests: placements for both runtimes over a throwaway state dir.

One placement per runtime for the whole session: building a stack under mocks writes nothing there,
and `tests.support.stack_graphs` builds the stack once per placement."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.runtime import Placement, Runtime
from toolchain.layout import Toolchain


UNIT_ENGINE = "unix:///run/cdcstack-unit/docker.sock"
"""A daemon address for the docker runtime's graph under mocks (nothing talks to it)."""


def placement_for(runtime: Runtime, state_dir: Path) -> Placement:
    if runtime is Runtime.DOCKER:
        return Placement.on_docker(state_dir, Toolchain.discover(), "cdcstack-unit", UNIT_ENGINE, "linux/amd64")
    return Placement(runtime=runtime, stack_dir=state_dir, toolchain=Toolchain.discover(), docker_network="cdcstack-unit")


@pytest.fixture(scope="session")
def process_placement(tmp_path_factory: pytest.TempPathFactory) -> Placement:
    return placement_for(Runtime.PROCESS, tmp_path_factory.mktemp("process-stack"))


@pytest.fixture(scope="session")
def docker_placement(tmp_path_factory: pytest.TempPathFactory) -> Placement:
    return placement_for(Runtime.DOCKER, tmp_path_factory.mktemp("docker-stack"))
