"""A batch of change events reduced to what one table commit must do: destination-neutral.

Every sink applies a batch keyed by the source primary key: the last state of each key the batch
touched is written, the keys it deleted are removed, and a truncate forgets everything before it.
Replaying the same events in order gives the same plan, which is what makes a retried batch safe.

A column whose value the source did not send (:data:`pipelines.debezium.UNAVAILABLE`: a Postgres
TOASTed value an update left unchanged) takes the value an earlier event of the batch wrote for
that row; when the batch has none, the plan says which columns of which row the writer must keep
from the table (:attr:`BatchPlan.unresolved`). Writing the placeholder would lose the value.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipelines.debezium import UNAVAILABLE, ChangeEvent
from pipelines.sinks.errors import TerminalSinkError

Key = tuple[Any, ...]


@dataclass
class BatchPlan:
    """A batch reduced to what one commit must do."""

    truncate: bool = False
    """Everything in the table before this batch goes."""
    upserts: dict[Key, dict[str, Any]] = field(default_factory=dict)
    """The last state of each key written by the batch."""
    deletes: set[Key] = field(default_factory=set)
    """Keys the batch removed (and did not write again)."""
    unresolved: dict[Key, tuple[Key, frozenset[str]]] = field(default_factory=dict)
    """Upserted key -> (the key whose current row in the table holds them, columns to keep from it)."""

    @property
    def touched(self) -> set[Key]:
        return set(self.upserts) | self.deletes


def _key(row: dict[str, Any], key_columns: Sequence[str], event: ChangeEvent) -> Key:
    try:
        return tuple(row[column] for column in key_columns)
    except KeyError as missing:
        raise TerminalSinkError(
            f"{event.topic}@{event.partition}:{event.offset}: the row has no key column {missing} (key: {list(key_columns)})"
        ) from missing


def plan_batch(events: Iterable[ChangeEvent], key_columns: Sequence[str]) -> BatchPlan:
    """The last state of every key the batch touched; a truncate forgets everything before it."""
    plan = BatchPlan()
    for event in events:
        if event.op == "t":
            plan = BatchPlan(truncate=True)
            continue
        if event.op == "d":
            if event.before is None:
                raise TerminalSinkError(f"{event.topic}@{event.partition}:{event.offset}: a delete without its old row")
            key = _key(event.before, key_columns, event)
            plan.upserts.pop(key, None)
            plan.deletes.add(key)
            continue
        if event.after is None:
            continue
        key = _key(event.after, key_columns, event)
        source_key = key
        if event.op == "u" and event.before is not None:
            old_key = _key(event.before, key_columns, event)
            if old_key != key:
                source_key = old_key
        row = _resolve(plan, key, source_key, event.after)
        if source_key != key:
            plan.upserts.pop(source_key, None)
            plan.unresolved.pop(source_key, None)
            plan.deletes.add(source_key)
        plan.deletes.discard(key)
        plan.upserts[key] = row
    return plan


def _resolve(plan: BatchPlan, key: Key, source_key: Key, after: dict[str, Any]) -> dict[str, Any]:
    """`after` with its unavailable columns taken from the batch's earlier state of the row, and
    what is still missing recorded in the plan for the writer."""
    missing = {column for column, value in after.items() if value is UNAVAILABLE}
    if not missing:
        plan.unresolved.pop(key, None)
        return after
    row = dict(after)
    earlier = plan.upserts.get(source_key)
    if earlier is None:
        plan.unresolved[key] = (source_key, frozenset(missing))
        return row
    for column in missing:
        row[column] = earlier.get(column, UNAVAILABLE)
    still_missing = frozenset(column for column in missing if row[column] is UNAVAILABLE)
    inherited = plan.unresolved.get(source_key)
    if still_missing:
        plan.unresolved[key] = (inherited[0] if inherited else source_key, still_missing)
    else:
        plan.unresolved.pop(key, None)
    return row
