"""Comparing a source table with what arrived downstream: by key, or as multisets of rows.

Both count rows rather than collapse them, so a row delivered twice is a difference.
"""

from __future__ import annotations

import reprlib

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipelines.debezium import UNAVAILABLE, ChangeEvent, Tombstone

Row = Mapping[str, Any]
Key = tuple[Any, ...]


_SUMMARY_REPR = reprlib.Repr()
_SUMMARY_REPR.maxstring = _SUMMARY_REPR.maxother = 120
_SUMMARY_REPR.maxlist = _SUMMARY_REPR.maxtuple = 12
_SUMMARY_REPR.maxdict, _SUMMARY_REPR.maxlevel = 24, 5


def _clipped(value: Any) -> str:
    """A sample for a message: long values (a 10 MB text column) cut to their first characters."""
    return _SUMMARY_REPR.repr(value)


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
            key = key_of(event.after, key_columns)
            previous = state.get(key)
            if event.op == "u" and event.before is not None and key_of(event.before, key_columns) != key:
                # A primary-key change arrives as an update whose before key differs.
                previous = state.pop(key_of(event.before, key_columns), None)
            # A column the source did not send (an unchanged TOASTed value) keeps its value.
            state[key] = {
                column: (previous or {}).get(column) if value is UNAVAILABLE else value for column, value in event.after.items()
            }
    return state


@dataclass
class RowDiff:
    """How two keyed row sets differ, as multisets: empty when every key appears once on each side
    with equal values."""

    missing: dict[Key, Row] = field(default_factory=dict)
    """In the source, not downstream."""
    unexpected: dict[Key, Row] = field(default_factory=dict)
    """Downstream, not in the source."""
    changed: dict[Key, tuple[Row, Row]] = field(default_factory=dict)
    """(source row, downstream row) for keys where a downstream copy differs from the source row."""
    duplicated: dict[Key, int] = field(default_factory=dict)
    """Keys downstream holds more than once, with how many rows each has."""
    source_duplicated: dict[Key, int] = field(default_factory=dict)
    """Keys the source itself holds more than once (a key that is not unique there), with their counts."""

    @property
    def equal(self) -> bool:
        return not (self.missing or self.unexpected or self.changed or self.duplicated or self.source_duplicated)

    def summary(self, limit: int = 5) -> str:
        parts = []
        for label, items in (
            ("missing", self.missing),
            ("unexpected", self.unexpected),
            ("changed", self.changed),
            ("duplicated downstream (key: rows)", self.duplicated),
            ("duplicated in the source (key: rows)", self.source_duplicated),
        ):
            if items:
                sample = list(items.items())[:limit]
                parts.append(f"{len(items)} {label}, e.g. {_clipped(sample)}")
        return "; ".join(parts) or "equal"


def _group_by_key(rows: Iterable[Row], key_columns: Sequence[str]) -> dict[Key, list[Row]]:
    grouped: dict[Key, list[Row]] = {}
    for row in rows:
        grouped.setdefault(key_of(row, key_columns), []).append(row)
    return grouped


def compare_rows(
    source: Iterable[Row], downstream: Iterable[Row], key_columns: Sequence[str], columns: Sequence[str] | None = None
) -> RowDiff:
    """Compares two row sets by key, on `columns` (default: every column of the source rows).

    Rows are counted, not collapsed by key: a key held twice on either side is a difference
    (`duplicated` downstream, `source_duplicated` in the source) even when every copy is equal.
    """
    source_by_key = _group_by_key(source, key_columns)
    downstream_by_key = _group_by_key(downstream, key_columns)
    diff = RowDiff()
    for key, rows in source_by_key.items():
        row = rows[0]
        if len(rows) > 1:
            diff.source_duplicated[key] = len(rows)
        others = downstream_by_key.get(key)
        if others is None:
            diff.missing[key] = row
            continue
        if len(others) > 1:
            diff.duplicated[key] = len(others)
        compared = columns or list(row.keys())
        differing = [other for other in others if any(row.get(column) != other.get(column) for column in compared)]
        if differing:
            diff.changed[key] = (row, differing[0])
    for key, rows in downstream_by_key.items():
        if key not in source_by_key:
            diff.unexpected[key] = rows[0]
            if len(rows) > 1:
                diff.duplicated[key] = len(rows)
    return diff


FrozenRow = tuple[tuple[str, Any], ...]


def _frozen(value: Any) -> Any:
    """A hashable stand-in for a cell: dicts, lists and sets (Json, array columns) become tuples."""
    if isinstance(value, Mapping):
        return tuple(sorted(((str(name), _frozen(item)) for name, item in value.items()), key=lambda pair: pair[0]))
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(item) for item in value)
    if isinstance(value, (set, frozenset)):
        return tuple(sorted((_frozen(item) for item in value), key=repr))
    return value


def freeze_row(row: Row, columns: Sequence[str] | None = None) -> FrozenRow:
    """The row as hashable (column, value) pairs, on `columns` (default: all of its own, sorted)."""
    return tuple((column, _frozen(row.get(column))) for column in (columns or sorted(row)))


@dataclass
class MultisetDiff:
    """How two bags of rows differ: rows with how many more copies one side holds than the other."""

    missing: Counter[FrozenRow] = field(default_factory=Counter)
    """Rows the source holds more often than downstream, with the number of copies short."""
    unexpected: Counter[FrozenRow] = field(default_factory=Counter)
    """Rows downstream holds more often than the source, with the number of extra copies."""

    @property
    def equal(self) -> bool:
        return not (self.missing or self.unexpected)

    def summary(self, limit: int = 5) -> str:
        parts = []
        for label, counts in (("missing", self.missing), ("unexpected", self.unexpected)):
            if counts:
                sample = [(dict(row), copies) for row, copies in counts.most_common(limit)]
                parts.append(f"{sum(counts.values())} {label} rows (row, copies), e.g. {_clipped(sample)}")
        return "; ".join(parts) or "equal"


def compare_multisets(
    source: Iterable[Row], downstream: Iterable[Row], columns: Sequence[str] | None = None
) -> MultisetDiff:
    """Compares two row collections that have no key (change feeds, change histories) as multisets.

    Order does not matter, copies do: a row emitted twice where the source has it once is one
    `unexpected` copy. Compared on `columns` (default: every column of each row).
    """
    source_counts = Counter(freeze_row(row, columns) for row in source)
    downstream_counts = Counter(freeze_row(row, columns) for row in downstream)
    return MultisetDiff(missing=source_counts - downstream_counts, unexpected=downstream_counts - source_counts)
