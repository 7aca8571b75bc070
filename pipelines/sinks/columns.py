"""What every destination reads the same way from a Debezium column's Connect schema."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipelines.sinks.errors import TerminalSinkError

MAX_DECIMAL_PRECISION = 38
"""The widest decimal of Iceberg, Spark/Delta and Arrow's decimal128."""


def decimal_precision_and_scale(column_schema: Mapping[str, Any], destination: str) -> tuple[int, int]:
    """(precision, scale) of a Connect `Decimal` column; TerminalSinkError when `destination` cannot hold it."""
    parameters = column_schema.get("parameters") or {}
    scale = int(parameters.get("scale", 0))
    precision = int(parameters.get("connect.decimal.precision", MAX_DECIMAL_PRECISION))
    if precision > MAX_DECIMAL_PRECISION:
        raise TerminalSinkError(
            f"column {column_schema.get('field')!r}: decimal({precision},{scale}) is wider than {destination}'s {MAX_DECIMAL_PRECISION} digits"
        )
    return precision, scale
