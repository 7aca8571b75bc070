"""A batch of change events reduced to what one table commit must do: destination-neutral.

Every sink applies a batch keyed by the source primary key: the last state of each key the batch
touched is written, the keys it deleted are removed, and a truncate forgets everything before it.
Replaying the same events in order gives the same plan, which is what makes a retried batch safe.

A column whose value the source did not send (:data:`pipelines.debezium.UNAVAILABLE`: a Postgres
TOASTed value an update left unchanged) takes the value an earlier event of the batch wrote for
that row; when the batch has none, the plan says which columns of which row the writer must keep
from the table (:attr:`BatchPlan.unresolved`). Writing the placeholder would lose the value.

An event that cannot be planned (a delete without its old row, a row without its key column, a
keyless event for a keyed table) does not fail the batch: the plan lists it with the reason
(:attr:`BatchPlan.rejected`), and the writer refuses exactly those events.

A table without a primary key (Debezium sends such changes with a null key) is replicated as the
source has it, a multiset of rows (:func:`plan_keyless_batch`): inserts append; an update or
delete removes one row equal to its whole old row, which the source sends only with `REPLICA
IDENTITY FULL` (Postgres; MySQL's binlog always has it), and an update then appends its new row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipelines.debezium import UNAVAILABLE, ChangeEvent

Key = tuple[Any, ...]

NO_OLD_ROW_HINT = (
    "a table without a primary key is matched by its whole old row, which the source sends only with "
    "REPLICA IDENTITY FULL (Postgres: ALTER TABLE ... REPLICA IDENTITY FULL)"
)


class _Refused(Exception):
    """An event the plan cannot take, with why."""


def position(event: ChangeEvent) -> str:
    return f"{event.topic}@{event.partition}:{event.offset}"


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
    rejected: dict[int, str] = field(default_factory=dict)
    """Position in the batch of each event the plan cannot take -> why; the rest is planned without them."""

    @property
    def touched(self) -> set[Key]:
        return set(self.upserts) | self.deletes


def _key(row: dict[str, Any], key_columns: Sequence[str], event: ChangeEvent) -> Key:
    try:
        return tuple(row[column] for column in key_columns)
    except KeyError as missing:
        raise _Refused(f"{position(event)}: the row has no key column {missing} (key: {list(key_columns)})") from missing


def plan_batch(events: Iterable[ChangeEvent], key_columns: Sequence[str]) -> BatchPlan:
    """The last state of every key the batch touched; a truncate forgets everything before it."""
    plan = BatchPlan()
    for index, event in enumerate(events):
        try:
            plan = _plan_event(plan, event, key_columns)
        except _Refused as refused:
            plan.rejected[index] = str(refused)
    return plan


def _plan_event(plan: BatchPlan, event: ChangeEvent, key_columns: Sequence[str]) -> BatchPlan:
    if event.op == "t":
        return BatchPlan(truncate=True, rejected=plan.rejected)
    if not event.key_columns:
        raise _Refused(
            f"{position(event)}: a {event.operation} without a key (the source table has no primary key now: dropped, or "
            f"re-created without one) for a table keyed by {list(key_columns)}; not applied, appending it would duplicate rows"
        )
    if event.op == "d":
        if event.before is None:
            raise _Refused(f"{position(event)}: a delete without its old row")
        key = _key(event.before, key_columns, event)
        plan.upserts.pop(key, None)
        plan.deletes.add(key)
        return plan
    if event.after is None:
        return plan
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


def row_identity(row: dict[str, Any]) -> str:
    """Equal text for equal rows, whatever their column order (rows hold lists, so are not hashable)."""
    return repr(sorted(row.items()))


@dataclass
class RowRemoval:
    """One old row the batch takes out of the table, once per event in `events`."""

    row: dict[str, Any]
    events: list[int] = field(default_factory=list)
    """Positions of the events that each remove one occurrence, in batch order."""


@dataclass
class KeylessPlan:
    """A batch for a table without a primary key, reduced to one commit: rows taken out of the table
    (one occurrence each) and rows added."""

    truncate: bool = False
    appends: list[dict[str, Any]] = field(default_factory=list)
    """New rows (inserts, and updates' new rows) not removed again within the batch, in order."""
    removals: dict[str, RowRemoval] = field(default_factory=dict)
    """row_identity(old row) -> the occurrences of it the batch removes from the table."""
    rejected: dict[int, str] = field(default_factory=dict)


def _take_back(plan: KeylessPlan, old: dict[str, Any], index: int) -> None:
    """Removes one occurrence of `old`: a row this batch added, else one of the table's."""
    identity = row_identity(old)
    for appended_at, row in enumerate(plan.appends):
        if row_identity(row) == identity:
            del plan.appends[appended_at]
            return
    plan.removals.setdefault(identity, RowRemoval(old)).events.append(index)


def plan_keyless_batch(events: Iterable[ChangeEvent]) -> KeylessPlan:
    """What a batch does to a table without a primary key (see the module docstring)."""
    plan = KeylessPlan()
    for index, event in enumerate(events):
        if event.op == "t":
            plan = KeylessPlan(truncate=True, rejected=plan.rejected)
            continue
        if event.op in ("u", "d"):
            old = event.before
            if old is None or any(value is UNAVAILABLE for value in old.values()):
                plan.rejected[index] = f"{position(event)}: a {event.operation} without its whole old row: {NO_OLD_ROW_HINT}"
                continue
        if event.op != "d" and event.after is None:
            continue
        new = None
        if event.op != "d":
            assert event.after is not None
            new = {column: (event.before or {}).get(column, UNAVAILABLE) if value is UNAVAILABLE else value for column, value in event.after.items()}
            missing = sorted(column for column, value in new.items() if value is UNAVAILABLE)
            if missing:
                plan.rejected[index] = f"{position(event)}: an {event.operation} without {missing} (unchanged TOASTed values) and no old row to take them from: {NO_OLD_ROW_HINT}"
                continue
        if event.op in ("u", "d"):
            assert event.before is not None
            _take_back(plan, event.before, index)
        if new is not None:
            plan.appends.append(new)
    return plan
