"""Row counts and row-by-row comparison between a source table and what arrived downstream."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipelines.debezium import ChangeEvent, Tombstone

Row = Mapping[str, Any]
Key = tuple[Any, ...]


def key_of(row: Row, key_columns: Sequence[str]) -> Key:
    return tuple(row[column] for column in key_columns)


def materialize(events: Iterable[ChangeEvent | Tombstone], key_columns: Sequence[str]) -> dict[Key, dict[str, Any]]:
    """The table state the events describe: latest row per key, deletes removed, truncates clearing all."""
    state: dict[Key, dict[str, Any]] = {}
    for event in events:
        if isinstance(event, Tombstone):
            continue
        if event.op == "t":
            state.clear()
        elif event.op == "d":
            if event.before is not None:
                state.pop(key_of(event.before, key_columns), None)
        elif event.after is not None:
            if event.op == "u" and event.before is not None:
                # A primary-key change arrives as an update whose before key differs.
                state.pop(key_of(event.before, key_columns), None)
            state[key_of(event.after, key_columns)] = dict(event.after)
    return state


@dataclass
class RowDiff:
    """How two keyed row sets differ; empty when they are equal row by row."""

    missing: dict[Key, Row] = field(default_factory=dict)
    """In the source, not downstream."""
    unexpected: dict[Key, Row] = field(default_factory=dict)
    """Downstream, not in the source."""
    changed: dict[Key, tuple[Row, Row]] = field(default_factory=dict)
    """(source row, downstream row) for keys whose values differ."""

    @property
    def equal(self) -> bool:
        return not (self.missing or self.unexpected or self.changed)

    def summary(self, limit: int = 5) -> str:
        parts = []
        for label, items in (("missing", self.missing), ("unexpected", self.unexpected), ("changed", self.changed)):
            if items:
                sample = list(items.items())[:limit]
                parts.append(f"{len(items)} {label}, e.g. {sample}")
        return "; ".join(parts) or "equal"


def compare_rows(
    source: Iterable[Row], downstream: Iterable[Row], key_columns: Sequence[str], columns: Sequence[str] | None = None
) -> RowDiff:
    """Compares two row sets by key, on `columns` (default: every column of the source rows)."""
    source_by_key = {key_of(row, key_columns): row for row in source}
    downstream_by_key = {key_of(row, key_columns): row for row in downstream}
    diff = RowDiff()
    for key, row in source_by_key.items():
        other = downstream_by_key.get(key)
        if other is None:
            diff.missing[key] = row
            continue
        compared = columns or list(row.keys())
        if any(row.get(column) != other.get(column) for column in compared):
            diff.changed[key] = (row, other)
    for key, row in downstream_by_key.items():
        if key not in source_by_key:
            diff.unexpected[key] = row
    return diff
