"""Inputs a dynamic provider sees during preview, before the values they depend on exist."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi.output import Unknown

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""How Pulumi passes a not-yet-known input to a dynamic provider's check and diff."""


def is_known(value: Any) -> bool:
    """False when the value, or anything inside it, is not known yet.

    Pulumi passes an unknown either as the sentinel string or, when it deserialises with
    keep-unknowns, as a `pulumi.output.Unknown` object."""
    if isinstance(value, Unknown):
        return False
    if isinstance(value, Mapping):
        return all(is_known(item) for item in value.values())
    if isinstance(value, Sequence) and not isinstance(value, str):
        return all(is_known(item) for item in value)
    return value != UNKNOWN
