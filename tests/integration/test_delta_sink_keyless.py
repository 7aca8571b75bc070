"""The Delta writer against the stack's Spark cluster, metastore and object store on what a user's
tables send besides keyed changes: tables without a primary key (Debezium's null keys), replicated
as multisets of rows; keyless changes no table row answers; a keyless record for a keyed table; and
other events the writer can tell are at fault. Each of those is refused by itself
(`RejectedEventsError`) before anything commits, and the rest of its batch commits.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient
from pyspark.sql import SparkSession

import stack_outputs as out
from pipelines.debezium import UNAVAILABLE, ChangeEvent
from pipelines.sinks.core import CdcSink, RetryPolicy
from pipelines.sinks.delta.writer import KEY_COLUMNS_PROPERTY, DeltaTableWriter
from pipelines.sinks.errors import RejectedEventsError
from pipelines.spark import bucket_of
from testkit.iceberg import change
from testkit.kafka import consume_exactly, owned_sink_topic
from testkit.names import unique_name
from tests.support.delta import DeltaLake, owned_database
from tests.support.lake import dead_letter_headers
from tests.support.sinks import debezium_value, produce
from tests.support.stack import StackOutputs

TOPIC = "pg.inventory.events"
FAST_RETRY = RetryPolicy(first_delay_seconds=0.05, max_delay_seconds=0.2)


def offsets(next_offset: int) -> dict[str, int]:
    return {f"{TOPIC}:0": next_offset}


def row(row_id: int | None, name: str | None, qty: int | None) -> dict[str, Any]:
    return {"id": row_id, "name": name, "qty": qty}


def keyless(op: str, before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> ChangeEvent:
    """A change of a table without a primary key, as decoded from Debezium's null-keyed record."""
    return change(op, before=before, after=after, key_columns=())


def multiset(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows in one order whatever their NULLs, duplicates kept."""
    return sorted(rows, key=lambda item: json.dumps(item, sort_keys=True, default=str))


@dataclass
class OwnedTable:
    """Table `events` in a database of the test's own, and a writer for it."""

    spark: SparkSession
    identifier: str
    location: str
    bucket: str
    writer: DeltaTableWriter = field(init=False)

    def __post_init__(self) -> None:
        self.writer = self.new_writer()

    def new_writer(self) -> DeltaTableWriter:
        """A writer as a restarted sink has one: nothing cached."""
        return DeltaTableWriter(self.spark, self.identifier, self.bucket, location_root=self.location)

    def rows(self) -> list[dict[str, Any]]:
        return multiset([item.asDict() for item in self.spark.table(self.identifier).collect()])

    def version(self) -> int:
        return int(self.spark.sql(f"DESCRIBE HISTORY {self.identifier}").agg({"version": "max"}).first()[0])

    def operations(self) -> list[str]:
        history = self.spark.sql(f"DESCRIBE HISTORY {self.identifier}").select("version", "operation").collect()
        return [entry["operation"] for entry in sorted(history, key=lambda entry: entry["version"])]

    def key_columns(self) -> list[str]:
        properties = {item["key"]: item["value"] for item in self.spark.sql(f"SHOW TBLPROPERTIES {self.identifier}").collect()}
        return json.loads(properties[KEY_COLUMNS_PROPERTY])


@pytest.fixture
def owned(spark: SparkSession, delta_lake: DeltaLake, stack: StackOutputs) -> Iterator[OwnedTable]:
    with owned_database(spark, delta_lake, stack.s3_client()) as (database, location):
        yield OwnedTable(spark, f"{database}.events", location, bucket_of(stack[out.WAREHOUSE]))


def test_a_table_without_a_primary_key_is_replicated_as_a_multiset(owned: OwnedTable, spark: SparkSession) -> None:
    owned.writer.apply(
        [
            keyless("c", after=row(1, "a", 1)),
            keyless("c", after=row(1, "a", 1)),
            keyless("c", after=row(2, "b", 2)),
            keyless("c", after=row(2, "b", 2)),
            keyless("c", after=row(3, None, None)),
        ],
        offsets(5),
    )
    assert owned.key_columns() == []
    assert {column.name: column.nullable for column in spark.table(owned.identifier).schema.fields} == {"id": True, "name": True, "qty": True}
    assert owned.rows() == multiset([row(1, "a", 1), row(1, "a", 1), row(2, "b", 2), row(2, "b", 2), row(3, None, None)])

    # REPLICA IDENTITY FULL: each change names its whole old row, and takes out one row equal to it.
    owned.writer.apply(
        [
            keyless("u", before=row(1, "a", 1), after=row(1, "a2", 10)),
            keyless("d", before=row(2, "b", 2)),
            keyless("d", before=row(3, None, None)),
            keyless("c", after=row(4, "d", 4)),
        ],
        offsets(9),
    )
    assert owned.rows() == multiset([row(1, "a", 1), row(1, "a2", 10), row(2, "b", 2), row(4, "d", 4)])

    # A restarted writer finds the table keyless; an identical new row counts twice.
    owned.new_writer().apply([keyless("d", before=row(1, "a", 1)), keyless("c", after=row(1, "a2", 10))], offsets(11))
    assert owned.rows() == multiset([row(1, "a2", 10), row(1, "a2", 10), row(2, "b", 2), row(4, "d", 4)])

    owned.writer.apply([keyless("t"), keyless("c", after=row(5, "e", 5))], offsets(13))
    assert owned.rows() == [row(5, "e", 5)]
    owned.writer.apply([keyless("t")], offsets(14))
    assert owned.rows() == []
    assert owned.operations() == ["CREATE TABLE", "MERGE", "MERGE", "MERGE", "MERGE", "MERGE"]
    assert owned.new_writer().committed_offsets() == offsets(14)


def test_a_replayed_keyless_batch_is_a_no_op(owned: OwnedTable) -> None:
    owned.writer.apply([keyless("c", after=row(1, "a", 1)), keyless("c", after=row(1, "a", 1)), keyless("c", after=row(2, "b", 2))], offsets(3))
    batch = [keyless("d", before=row(1, "a", 1)), keyless("d", before=row(1, "a", 1)), keyless("u", before=row(2, "b", 2), after=row(2, "b2", 2))]
    applied = owned.writer.apply(batch, offsets(6))
    # The table no longer holds the old rows, yet replaying the committed batch refuses nothing: Delta skips it.
    replayed = owned.new_writer().apply(batch, offsets(6))
    assert replayed.version == applied.version == owned.version()
    assert owned.rows() == [row(2, "b2", 2)]
    assert owned.new_writer().committed_offsets() == offsets(6)


def test_a_keyless_change_no_row_answers_is_refused_and_the_rest_commits(owned: OwnedTable) -> None:
    owned.writer.apply([keyless("c", after=row(1, "a", 1)), keyless("c", after=row(2, "b", 2))], offsets(2))
    version, rows = owned.version(), owned.rows()
    batch = [
        # Without REPLICA IDENTITY FULL the source sends no old row, or one no table row equals.
        keyless("u", before=None, after=row(1, "a2", 1)),
        keyless("d", before=row(9, "never written", 9)),
        keyless("c", after=row(3, "c", 3)),
        keyless("d", before=row(2, "b", 2)),
        # The table holds one such row, and the change before took it.
        keyless("d", before=row(2, "b", 2)),
        keyless("u", before=row(1, "a", 1), after=row(1, "a3", 1)),
    ]
    with pytest.raises(RejectedEventsError) as refused:
        owned.writer.apply(batch, offsets(8))
    rejected = refused.value.rejected
    assert sorted(rejected) == [0, 1, 4]
    assert all("REPLICA IDENTITY FULL" in reason for reason in rejected.values()), rejected
    assert "without its whole old row" in rejected[0]
    assert all("no row of the table equals the old row" in rejected[index] for index in (1, 4)), rejected
    assert owned.version() == version and owned.rows() == rows
    assert owned.new_writer().committed_offsets() == offsets(2)

    owned.writer.apply([event for index, event in enumerate(batch) if index not in rejected], offsets(8))
    assert owned.rows() == [row(1, "a3", 1), row(3, "c", 3)]
    assert owned.new_writer().committed_offsets() == offsets(8)


def test_a_keyless_change_for_a_keyed_table_is_refused_not_appended(owned: OwnedTable) -> None:
    """What a dropped table's replayed changes look like: the same rows, with null keys."""
    owned.writer.apply([change("c", after=row(1, "a", 1)), change("c", after=row(2, "b", 2))], offsets(2))
    version, rows = owned.version(), owned.rows()
    batch = [
        keyless("c", after=row(1, "a", 1)),
        keyless("u", before=row(2, "b", 2), after=row(2, "b2", 2)),
        change("u", before=row(2, "b", 2), after=row(2, "b3", 2)),
    ]
    with pytest.raises(RejectedEventsError) as refused:
        owned.writer.apply(batch, offsets(5))
    rejected = refused.value.rejected
    assert sorted(rejected) == [0, 1]
    assert all("without a key" in reason and "duplicate rows" in reason for reason in rejected.values()), rejected
    assert owned.version() == version and owned.rows() == rows

    owned.writer.apply([batch[2]], offsets(5))
    assert owned.rows() == [row(1, "a", 1), row(2, "b3", 2)]
    assert owned.key_columns() == ["id"]


def test_events_at_fault_are_refused_by_themselves(owned: OwnedTable) -> None:
    owned.writer.apply([change("c", after=row(1, "a", 1)), change("c", after=row(2, "b", 2))], offsets(2))
    version, rows = owned.version(), owned.rows()
    batch = [
        change("c", after=row(3, "c", 3)),
        change("c", after={"id": 4, "name": "bad", "qty": "not a number"}),
        # An unchanged TOASTed value for a row the table does not hold: nothing to keep it from.
        change("u", before=row(5, "e", 5), after={"id": 5, "name": UNAVAILABLE, "qty": 50}),
        change("u", before=row(1, "a", 1), after={"id": 1, "name": UNAVAILABLE, "qty": 10}),
    ]
    with pytest.raises(RejectedEventsError) as unfit:
        owned.writer.apply(batch, offsets(6))
    assert list(unfit.value.rejected) == [1] and "does not fit its column 'qty'" in unfit.value.rejected[1]
    assert owned.version() == version and owned.rows() == rows

    rest = [event for index, event in enumerate(batch) if index != 1]
    with pytest.raises(RejectedEventsError) as unsent:
        owned.writer.apply(rest, offsets(6))
    assert list(unsent.value.rejected) == [1] and "TOASTed" in unsent.value.rejected[1], unsent.value.rejected
    assert owned.version() == version and owned.rows() == rows

    owned.writer.apply([rest[0], rest[2]], offsets(6))
    assert owned.rows() == [row(1, "a", 10), row(2, "b", 2), row(3, "c", 3)]


def test_a_truncate_creates_no_table_keyless_or_not(owned: OwnedTable, spark: SparkSession) -> None:
    """A truncate's record has no key whatever the source table has: it must not make the table keyless."""
    nothing = owned.writer.apply([keyless("t")], offsets(1))
    assert nothing.version is None and not spark.catalog.tableExists(owned.identifier)
    owned.writer.apply([keyless("t"), change("c", after=row(1, "a", 1))], offsets(3))
    assert owned.key_columns() == ["id"]
    assert owned.rows() == [row(1, "a", 1)]


@pytest.fixture
def topic(kafka_admin: AdminClient) -> Iterator[str]:
    with owned_sink_topic(kafka_admin, "delta_keyless") as name:
        yield name


def test_the_core_dead_letters_exactly_the_refused_events_and_commits_the_rest(
    owned: OwnedTable, stack: StackOutputs, topic: str
) -> None:
    records: list[tuple[bytes | None, bytes]] = [
        (None, debezium_value("c", None, {"id": 1, "name": "a"})),
        (None, debezium_value("c", None, {"id": 1, "name": "a"})),
        (None, debezium_value("u", None, {"id": 1, "name": "a2"})),
        (None, debezium_value("d", {"id": 7, "name": "never written"}, None)),
        (None, debezium_value("u", {"id": 1, "name": "a"}, {"id": 1, "name": "a3"})),
    ]
    produce(stack.kafka_bootstrap, topic, records)
    sink = CdcSink(stack.kafka_bootstrap, [topic], owned.writer, unique_name("delta_keyless"), batch_max_events=len(records), retry=FAST_RETRY)
    try:
        sink.run_until(lambda: sink.offsets.get(f"{topic}:0") == len(records), timeout_seconds=180)
    finally:
        sink.close()
    assert owned.rows() == [{"id": 1, "name": "a"}, {"id": 1, "name": "a3"}]
    assert sink.stats.healthy and sink.stats.dead_letters == 2 and sink.stats.applied_events == 3
    assert owned.new_writer().committed_offsets() == {f"{topic}:0": len(records)}
    letters = [dead_letter_headers(message) for message in consume_exactly(stack.kafka_bootstrap, f"{topic}.dlq", 2)]
    assert sorted(letter["cdcstack.source.offset"] for letter in letters) == ["2", "3"]
    assert all("REPLICA IDENTITY FULL" in letter["cdcstack.error"] for letter in letters), letters
