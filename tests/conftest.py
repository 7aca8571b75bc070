"""Suite-wide wiring: no skips, markers by folder, and the live stack's outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.stack import StackOutputs, read_stack_outputs

pytest_plugins = ["tests.support.no_skips"]

TESTS_DIR = Path(__file__).resolve().parent
MARKER_BY_FOLDER = {"unit": "unit", "integration": "integration", "e2e": "e2e"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        folder = Path(str(item.fspath)).relative_to(TESTS_DIR).parts[0]
        marker = MARKER_BY_FOLDER.get(folder)
        if marker is not None:
            item.add_marker(getattr(pytest.mark, marker))


@pytest.fixture(scope="session")
def stack() -> StackOutputs:
    """The live stack's outputs; fails (never skips) with what to run when the stack is not up."""
    return read_stack_outputs()
