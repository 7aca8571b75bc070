"""The Iceberg sink (consumer core and writer) against the live Kafka and Iceberg catalog on what a
user's tables send besides keyed changes: tables without a primary key (Debezium's null keys), a
keyless record for a table that has one, and an exception no writer foresaw for one event. None of
them may leave a table stuck: the rest lands, the rest is dead-lettered with why, the state is `ok`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
import pytest
from confluent_kafka.admin import AdminClient
from pyiceberg.catalog import Catalog

from pipelines.debezium import ChangeEvent
from pipelines.sinks.core import CdcSink, Commit, RetryPolicy
from pipelines.sinks.iceberg.writer import IcebergTableWriter
from testkit.iceberg import owned_namespace
from testkit.kafka import consume_exactly, owned_sink_topic
from testkit.names import unique_name
from tests.support.iceberg import catalog_of
from tests.support.lake import dead_letter_headers, iceberg_rows, job_status, lake_postgres_table, wait_for_job
from tests.support.sinks import debezium_key, debezium_value, produce
from tests.support.stack import StackOutputs

FAST_RETRY = RetryPolicy(first_delay_seconds=0.05, max_delay_seconds=0.2)
Record = tuple[bytes | None, bytes]


@pytest.fixture
def topic(kafka_admin: AdminClient) -> Iterator[str]:
    with owned_sink_topic(kafka_admin, "keyless") as name:
        yield name


@pytest.fixture
def catalog(stack: StackOutputs) -> Catalog:
    return catalog_of(stack)


@pytest.fixture
def identifier(catalog: Catalog) -> Iterator[str]:
    with owned_namespace(catalog, "keyless") as namespace:
        yield f"{namespace}.events"


def row(row_id: int, name: str) -> dict[str, Any]:
    return {"id": row_id, "name": name}


def keyless(op: str, before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> Record:
    """A change of a table without a primary key, as Debezium sends it: a null key."""
    return (None, debezium_value(op, before, after))


def keyed(op: str, before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> Record:
    return (debezium_key((after or before or {})["id"]), debezium_value(op, before, after))


def replicate(stack: StackOutputs, topic: str, writer: Any, records: Sequence[Record]) -> CdcSink:
    """Produces the records and runs a sink over them until the last offset is committed."""
    produce(stack.kafka_bootstrap, topic, records)
    sink = CdcSink(stack.kafka_bootstrap, [topic], writer, unique_name("keyless"), retry=FAST_RETRY)
    try:
        sink.run_until(lambda: sink.offsets.get(f"{topic}:0") == len(records), timeout_seconds=90)
    finally:
        sink.close()
    return sink


def table_rows(catalog: Catalog, identifier: str) -> list[dict[str, Any]]:
    return sorted(catalog.load_table(identifier).scan().to_arrow().to_pylist(), key=lambda item: (item["id"], item["name"]))


def dead_letters(stack: StackOutputs, topic: str, count: int) -> list[dict[str, str]]:
    return [dead_letter_headers(message) for message in consume_exactly(stack.kafka_bootstrap, f"{topic}.dlq", count)]


def test_a_table_without_a_primary_key_is_replicated_as_a_multiset(
    stack: StackOutputs, topic: str, catalog: Catalog, identifier: str
) -> None:
    records = [
        keyless("c", after=row(1, "a")),
        keyless("c", after=row(1, "a")),
        keyless("c", after=row(2, "b")),
        keyless("c", after=row(3, "c")),
        # REPLICA IDENTITY FULL: the whole old row; one of the two identical rows changes.
        keyless("u", before=row(1, "a"), after=row(1, "a2")),
        keyless("d", before=row(3, "c")),
    ]
    sink = replicate(stack, topic, IcebergTableWriter(catalog, identifier), records)
    assert table_rows(catalog, identifier) == [row(1, "a"), row(1, "a2"), row(2, "b")]
    assert catalog.load_table(identifier).schema().identifier_field_names() == set()
    assert sink.stats.healthy and sink.stats.dead_letters == 0 and sink.stats.applied_events == len(records)

    later = [keyless("d", before=row(1, "a")), keyless("u", before=row(2, "b"), after=row(2, "b2")), keyless("c", after=row(1, "a2"))]
    produce(stack.kafka_bootstrap, topic, later)
    again = CdcSink(stack.kafka_bootstrap, [topic], IcebergTableWriter(catalog, identifier), unique_name("keyless"), retry=FAST_RETRY)
    try:
        again.run_until(lambda: again.offsets.get(f"{topic}:0") == len(records) + len(later), timeout_seconds=90)
    finally:
        again.close()
    # Changes against rows of earlier commits match the table's rows; a new identical row counts twice.
    assert table_rows(catalog, identifier) == [row(1, "a2"), row(1, "a2"), row(2, "b2")]
    assert again.stats.healthy and again.stats.dead_letters == 0


def test_a_keyless_change_without_its_whole_old_row_is_dead_lettered_saying_why(
    stack: StackOutputs, topic: str, catalog: Catalog, identifier: str
) -> None:
    records = [
        keyless("c", after=row(1, "a")),
        keyless("c", after=row(2, "b")),
        # Without REPLICA IDENTITY FULL the source sends no old row, or one no table row equals.
        keyless("u", before=None, after=row(1, "a2")),
        keyless("d", before=row(9, "never written")),
        keyless("c", after=row(3, "c")),
    ]
    sink = replicate(stack, topic, IcebergTableWriter(catalog, identifier), records)
    assert table_rows(catalog, identifier) == [row(1, "a"), row(2, "b"), row(3, "c")]
    assert sink.stats.healthy and sink.stats.dead_letters == 2
    letters = dead_letters(stack, topic, 2)
    assert [letter["cdcstack.source.offset"] for letter in letters] == ["2", "3"]
    assert all("REPLICA IDENTITY FULL" in letter["cdcstack.error"] for letter in letters), letters
    assert "no row of the table equals the old row" in letters[1]["cdcstack.error"]


def test_a_keyless_record_for_a_keyed_table_is_dead_lettered_not_appended(
    stack: StackOutputs, topic: str, catalog: Catalog, identifier: str
) -> None:
    """What a dropped table's replayed changes look like: the same rows, with null keys."""
    records = [
        keyed("c", after=row(1, "a")),
        keyed("c", after=row(2, "b")),
        keyless("c", after=row(1, "a")),
        keyless("u", before=row(2, "b"), after=row(2, "b2")),
        keyed("u", before=row(2, "b"), after=row(2, "b3")),
    ]
    sink = replicate(stack, topic, IcebergTableWriter(catalog, identifier), records)
    assert table_rows(catalog, identifier) == [row(1, "a"), row(2, "b3")]
    assert sink.stats.healthy and sink.stats.dead_letters == 2
    letters = dead_letters(stack, topic, 2)
    assert [letter["cdcstack.source.offset"] for letter in letters] == ["2", "3"]
    assert all("without a key" in letter["cdcstack.error"] and "duplicate" in letter["cdcstack.error"] for letter in letters), letters


class FailingOnOneRow(IcebergTableWriter):
    """The real writer, with a bug that only one row's values reach (a KeyError, as a programming
    error would raise), inside the writer where its own failures are mapped."""

    poisoned_id: int = 13

    def _arrow_rows(self, table: Any, rows: Any) -> Any:
        rows = list(rows)
        if any(item.get("id") == self.poisoned_id for item in rows):
            raise KeyError("no column for this value")
        return super()._arrow_rows(table, rows)


def test_an_unexpected_exception_for_one_event_dead_letters_it_and_the_rest_lands(
    stack: StackOutputs, topic: str, catalog: Catalog, identifier: str
) -> None:
    records = [keyed("c", after=row(n, f"row {n}")) for n in range(1, 31)]
    sink = replicate(stack, topic, FailingOnOneRow(catalog, identifier), records)
    assert table_rows(catalog, identifier) == [row(n, f"row {n}") for n in range(1, 31) if n != 13]
    assert sink.stats.healthy and sink.stats.as_dict()["state"] == "ok"
    assert sink.stats.dead_letters == 1
    [letter] = dead_letters(stack, topic, 1)
    assert letter["cdcstack.source.offset"] == "12"
    assert letter["cdcstack.error.class"] == "UnexpectedSinkError" and "KeyError" in letter["cdcstack.error"], letter


def test_an_unexpected_exception_caused_by_the_network_is_retried_not_dead_lettered(
    stack: StackOutputs, topic: str, catalog: Catalog, identifier: str
) -> None:
    class FlakyNetwork(IcebergTableWriter):
        failures_left = 2

        def apply(self, events: Sequence[ChangeEvent], offsets: Any) -> Commit:
            if self.failures_left:
                self.failures_left -= 1
                raise ConnectionResetError("connection reset by peer")
            return super().apply(events, offsets)

    records = [keyed("c", after=row(n, f"row {n}")) for n in range(1, 11)]
    sink = replicate(stack, topic, FlakyNetwork(catalog, identifier), records)
    assert table_rows(catalog, identifier) == [row(n, f"row {n}") for n in range(1, 11)]
    assert sink.stats.dead_letters == 0 and sink.stats.attempts_failed == 2 and sink.stats.healthy
    snapshot = catalog.load_table(identifier).current_snapshot()
    assert snapshot is not None and json.loads(snapshot.summary.additional_properties["cdcstack.kafka-offsets"]) == {f"{topic}:0": 10}


def test_a_postgres_table_without_a_primary_key_replicates_through_the_stack(
    stack: StackOutputs, pg: psycopg.Connection, kafka_admin: AdminClient, catalog: Catalog
) -> None:
    """Debezium's own null keys, through the stack's sink job: identical rows, one of them updated."""
    with lake_postgres_table(stack, pg, kafka_admin, catalog, "id integer NOT NULL, name text") as table:
        pg.execute(f"ALTER TABLE {table.qualified} REPLICA IDENTITY FULL")
        pg.execute(f"INSERT INTO {table.qualified} VALUES (1, 'a'), (1, 'a'), (2, 'b'), (3, 'c'), (4, NULL)")
        pg.execute(f"UPDATE {table.qualified} SET name = 'a2' WHERE ctid = (SELECT min(ctid) FROM {table.qualified} WHERE id = 1)")
        pg.execute(f"DELETE FROM {table.qualified} WHERE id = 3")
        pg.execute(f"UPDATE {table.qualified} SET name = 'd' WHERE id = 4")
        expected = [row(1, "a"), row(1, "a2"), row(2, "b"), row(4, "d")]

        def in_lake(_code: int, status: dict[str, Any]) -> bool:
            # The commit is visible before the job counts it: wait for both.
            applied = status.get("tables", {}).get(table.topic, {}).get("applied", 0) >= 8
            return applied and sorted_rows(iceberg_rows(catalog, table.identifier)) == expected

        wait_for_job(stack, in_lake, f"{table.identifier} equal to {table.qualified} as multisets {expected}")
        assert sorted_rows(pg.execute(f"SELECT id, name FROM {table.qualified}").fetchall()) == expected
        status = job_status(stack)[1]["tables"][table.topic]
        assert status["state"] == "ok" and status["dead_letters"] == 0 and status["applied"] == 8, status


def sorted_rows(rows: Sequence[Any]) -> list[dict[str, Any]]:
    as_dicts = [item if isinstance(item, dict) else {"id": item[0], "name": item[1]} for item in rows]
    return sorted(as_dicts, key=lambda item: (item["id"], item["name"] or ""))
