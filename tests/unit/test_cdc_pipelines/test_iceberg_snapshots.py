"""Snapshot tracking of sink-written tables: offsets, lookups by offset and time, time travel, changes."""

from __future__ import annotations

import time

from pipelines.sinks.iceberg.writer import IcebergTableWriter, committed_offsets
from pipelines.sinks.iceberg.snapshots import changes_between, commit_as_of, commit_containing, rows_at, sink_commits
from testkit.iceberg import change


def three_batches(writer: IcebergTableWriter) -> list[int]:
    """Writes three batches (offsets 0-9, 10-14, 15-16 of topic t partition 0); returns commit times."""
    times = []
    writer.apply([change("c", after={"id": n, "name": f"n{n}", "qty": n}) for n in range(10)], {"t:0": 10})
    times.append(int(time.time() * 1000))
    time.sleep(0.05)
    writer.apply(
        [change("u", before={"id": n, "name": f"n{n}", "qty": n}, after={"id": n, "name": f"n{n}", "qty": n + 100}) for n in range(5)],
        {"t:0": 15},
    )
    times.append(int(time.time() * 1000))
    time.sleep(0.05)
    writer.apply([change("d", before={"id": 9, "name": "n9", "qty": 9}), change("c", after={"id": 42, "name": "new", "qty": 1})], {"t:0": 17})
    times.append(int(time.time() * 1000))
    return times


def test_every_commit_records_the_offsets_it_applied_up_to(writer: IcebergTableWriter) -> None:
    three_batches(writer)
    table = writer.catalog.load_table(writer.identifier)
    assert [commit.offsets for commit in sink_commits(table)] == [{"t:0": 10}, {"t:0": 15}, {"t:0": 17}]
    assert committed_offsets(table) == {"t:0": 17}


def test_offsets_of_several_partitions_are_kept_together(writer: IcebergTableWriter) -> None:
    writer.apply([change("c", after={"id": 1, "name": "a", "qty": 1})], {"t:0": 4, "t:1": 9, "u:0": 1})
    assert committed_offsets(writer.catalog.load_table(writer.identifier)) == {"t:0": 4, "t:1": 9, "u:0": 1}


def test_a_table_without_sink_commits_has_no_offsets(writer: IcebergTableWriter) -> None:
    writer.apply([change("c", after={"id": 1, "name": "a", "qty": 1})], {})
    assert committed_offsets(writer.catalog.load_table(writer.identifier)) == {}


def test_the_commit_containing_an_offset_is_found(writer: IcebergTableWriter) -> None:
    three_batches(writer)
    table = writer.catalog.load_table(writer.identifier)
    commits = sink_commits(table)
    assert commit_containing(table, "t", 0, 3) == commits[0]
    assert commit_containing(table, "t", 0, 12) == commits[1]
    assert commit_containing(table, "t", 0, 16) == commits[2]
    assert commit_containing(table, "t", 0, 17) is None


def test_the_commit_as_of_a_time_is_the_last_before_it(writer: IcebergTableWriter) -> None:
    times = three_batches(writer)
    table = writer.catalog.load_table(writer.identifier)
    commits = sink_commits(table)
    assert commit_as_of(table, times[1]) == commits[1]
    assert commit_as_of(table, commits[0].timestamp_ms - 1) is None


def test_time_travel_reads_the_table_as_it_was(writer: IcebergTableWriter) -> None:
    three_batches(writer)
    table = writer.catalog.load_table(writer.identifier)
    first, _, last = sink_commits(table)
    assert sorted(row["id"] for row in rows_at(table, first.snapshot_id)) == list(range(10))
    assert all(row["qty"] < 100 for row in rows_at(table, first.snapshot_id))
    assert sorted(row["id"] for row in rows_at(table, last.snapshot_id)) == [*range(9), 42]


def test_changes_between_two_commits_are_read_incrementally(writer: IcebergTableWriter) -> None:
    three_batches(writer)
    table = writer.catalog.load_table(writer.identifier)
    first, second, third = sink_commits(table)
    changes = changes_between(table, first.snapshot_id, third.snapshot_id, ["id"])
    assert changes.inserted == {(42,): {"id": 42, "name": "new", "qty": 1}}
    assert changes.deleted == {(9,): {"id": 9, "name": "n9", "qty": 9}}
    assert sorted(changes.updated) == [(n,) for n in range(5)]
    assert changes.updated[(0,)] == ({"id": 0, "name": "n0", "qty": 0}, {"id": 0, "name": "n0", "qty": 100})
    only_second = changes_between(table, first.snapshot_id, second.snapshot_id, ["id"])
    assert not only_second.inserted and not only_second.deleted and len(only_second.updated) == 5
