"""Markers come from the folder, except that a test under unit/ which needs the live stack is an
integration test, wherever the spec put its file (tests/unit/test_cdc_pipelines/ is such a path)."""

from __future__ import annotations

import pytest

from tests.conftest import LIVE_STACK_FIXTURE, marker_for


@pytest.mark.parametrize(("folder", "marker"), [("unit", "unit"), ("integration", "integration"), ("e2e", "e2e"), ("support", None)])
def test_a_test_is_marked_by_its_folder(folder: str, marker: str | None) -> None:
    assert marker_for(folder, ["tmp_path"]) == marker


def test_a_unit_folder_test_that_needs_the_live_stack_is_an_integration_test() -> None:
    assert marker_for("unit", ["catalog", LIVE_STACK_FIXTURE, "namespace"]) == "integration"


@pytest.mark.parametrize("folder", ["integration", "e2e"])
def test_live_stack_tests_elsewhere_keep_their_folder_marker(folder: str) -> None:
    assert marker_for(folder, [LIVE_STACK_FIXTURE]) == folder
