"""Reading an Iceberg table the CDC sink writes: its commits, by offset or time, and what changed.

Each sink commit records the Kafka offsets it applied up to, so a snapshot can be found by the
offset of a change it contains, or by time; two snapshots can be compared row by row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyiceberg.table import Table

from pipelines.consistency import RowDiff, compare_rows
from pipelines.sinks.iceberg.writer import sink_offsets_of


@dataclass(frozen=True)
class SinkCommit:
    """A snapshot written by the sink, with the offsets it applied up to (exclusive)."""

    snapshot_id: int
    timestamp_ms: int
    operation: str
    offsets: dict[str, int]


def sink_commits(table: Table) -> list[SinkCommit]:
    """The table's snapshots that carry sink offsets, oldest first (one per committed batch)."""
    commits = []
    for snapshot in table.snapshots():
        recorded = sink_offsets_of(snapshot)
        if recorded:
            commits.append(SinkCommit(snapshot.snapshot_id, snapshot.timestamp_ms, snapshot.summary.operation.value, json.loads(recorded)))
    return _last_per_commit(commits)


def _last_per_commit(commits: list[SinkCommit]) -> list[SinkCommit]:
    # A batch's transaction may write a delete and an append snapshot with the same offsets: the
    # append (the last) is the state after the batch.
    result: list[SinkCommit] = []
    for commit in commits:
        if result and result[-1].offsets == commit.offsets:
            result[-1] = commit
        else:
            result.append(commit)
    return result


def commit_containing(table: Table, topic: str, partition: int, offset: int) -> SinkCommit | None:
    """The first commit whose batch applied the record at topic/partition/offset."""
    key = f"{topic}:{partition}"
    for commit in sink_commits(table):
        if commit.offsets.get(key, -1) > offset:
            return commit
    return None


def commit_as_of(table: Table, timestamp_ms: int) -> SinkCommit | None:
    """The last commit made at or before `timestamp_ms`."""
    candidates = [commit for commit in sink_commits(table) if commit.timestamp_ms <= timestamp_ms]
    return candidates[-1] if candidates else None


def rows_at(table: Table, snapshot_id: int) -> list[dict[str, Any]]:
    """Time travel: the table's rows as of a snapshot."""
    return table.scan(snapshot_id=snapshot_id).to_arrow().to_pylist()


@dataclass(frozen=True)
class TableChanges:
    """Row-level changes between two snapshots, keyed by the identifier columns."""

    inserted: dict[tuple[Any, ...], dict[str, Any]]
    deleted: dict[tuple[Any, ...], dict[str, Any]]
    updated: dict[tuple[Any, ...], tuple[dict[str, Any], dict[str, Any]]]
    """(before, after) per key."""


def changes_between(table: Table, from_snapshot_id: int, to_snapshot_id: int, key_columns: Sequence[str]) -> TableChanges:
    """An incremental read: what the commits after `from_snapshot_id` up to `to_snapshot_id` did."""
    diff: RowDiff = compare_rows(rows_at(table, to_snapshot_id), rows_at(table, from_snapshot_id), key_columns)
    return TableChanges(
        inserted=dict(diff.missing),
        deleted=dict(diff.unexpected),
        updated={key: (before, after) for key, (after, before) in diff.changed.items()},
    )
