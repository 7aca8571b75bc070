"""Telling preview's unknown inputs from real ones, in both forms Pulumi passes them."""

from __future__ import annotations

from pulumi.output import UNKNOWN as UNKNOWN_OUTPUT

from providers.preview import UNKNOWN, is_known


def test_the_sentinel_string_and_the_unknown_object_are_both_unknown_wherever_they_sit() -> None:
    for unknown in (UNKNOWN, UNKNOWN_OUTPUT):
        assert not is_known(unknown)
        assert not is_known({"config": {"database.password": unknown}})
        assert not is_known(["a", unknown])


def test_known_values_are_known() -> None:
    assert is_known({"name": "cdcstack-postgres", "ports": [1, 2], "config": {}})
    assert is_known("")
