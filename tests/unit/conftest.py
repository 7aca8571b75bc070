"""Fixtures for unit tests: placements for both runtimes over a throwaway state dir.

One placement per runtime for the whole session: building a stack under mocks writes nothing there,
and `tests.support.stack_graphs` builds the stack once per placement."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.runtime import Placement, Runtime
from toolchain.layout import Toolchain


def placement_for(runtime: Runtime, state_dir: Path) -> Placement:
    return Placement(runtime=runtime, stack_dir=state_dir, toolchain=Toolchain.discover(), docker_network="cdcstack-unit")


@pytest.fixture(scope="session")
def process_placement(tmp_path_factory: pytest.TempPathFactory) -> Placement:
    return placement_for(Runtime.PROCESS, tmp_path_factory.mktemp("process-stack"))


@pytest.fixture(scope="session")
def docker_placement(tmp_path_factory: pytest.TempPathFactory) -> Placement:
    return placement_for(Runtime.DOCKER, tmp_path_factory.mktemp("docker-stack"))
