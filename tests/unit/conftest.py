"""Fixtures for unit tests: placements for both runtimes over a throwaway state dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.runtime import Placement, Runtime
from toolchain.layout import Toolchain


def placement_for(runtime: Runtime, state_dir: Path) -> Placement:
    return Placement(runtime=runtime, stack_dir=state_dir, toolchain=Toolchain.discover(), docker_network="cdcstack-unit")


@pytest.fixture
def process_placement(tmp_path: Path) -> Placement:
    return placement_for(Runtime.PROCESS, tmp_path)


@pytest.fixture
def docker_placement(tmp_path: Path) -> Placement:
    return placement_for(Runtime.DOCKER, tmp_path)
