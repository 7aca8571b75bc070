"""Postgres changes through Debezium and Kafka into Iceberg, compared with the source row by row."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import psycopg
import pytest
from pyiceberg.catalog import Catalog

from pipelines.consistency import compare_rows
from pipelines.sinks.core import CdcSink
from pipelines.sinks.iceberg.writer import IcebergTableWriter, committed_offsets
from testkit.iceberg import owned_namespace
from testkit.names import unique_name
from tests.support.cdc import CapturedTable
from tests.support.iceberg import catalog_of
from tests.support.sinks import group_offsets
from tests.support.stack import StackOutputs

ITEMS = "id integer PRIMARY KEY, name text NOT NULL, qty integer NOT NULL"


@dataclass
class IcebergTarget:
    catalog: Catalog
    identifier: str
    namespace: str

    def writer(self) -> IcebergTableWriter:
        return IcebergTableWriter(self.catalog, self.identifier)

    def rows(self) -> list[dict]:
        return self.catalog.load_table(self.identifier).scan().to_arrow().to_pylist()


@pytest.fixture
def target(stack: StackOutputs) -> Iterator[IcebergTarget]:
    catalog = catalog_of(stack)
    with owned_namespace(catalog, "cdc") as namespace:
        yield IcebergTarget(catalog, f"{namespace}.items", namespace)


def source_rows(pg: psycopg.Connection, table: CapturedTable) -> list[dict]:
    return [dict(zip(("id", "name", "qty"), row)) for row in pg.execute(f"SELECT id, name, qty FROM {table.qualified}").fetchall()]


def sink_for(stack: StackOutputs, table: CapturedTable, target: IcebergTarget, group: str) -> CdcSink:
    return CdcSink(stack.kafka_bootstrap, [table.topic], target.writer(), group_id=group)


def test_postgres_changes_land_in_iceberg_equal_to_the_source(
    stack: StackOutputs, pg: psycopg.Connection, postgres_capture, target: IcebergTarget
) -> None:
    """DQ-001 and DQ-004: Iceberg equals the source row by row, counts match at every stage."""
    table = postgres_capture(ITEMS)
    with pg.transaction():
        for row_id in range(1, 201):
            pg.execute(f"INSERT INTO {table.qualified} VALUES (%s, %s, %s)", [row_id, f"item {row_id}", row_id % 9])
    pg.execute(f"UPDATE {table.qualified} SET qty = qty + 100 WHERE id <= 50")
    pg.execute(f"DELETE FROM {table.qualified} WHERE id > 180")
    expected_events = 200 + 50 + 20
    kafka_events = table.reader.wait_for_exactly_changes(expected_events)
    assert len(kafka_events) == expected_events
    sink = sink_for(stack, table, target, unique_name("sink"))
    try:
        sink.run_until(lambda: sink.applied_events >= expected_events, timeout_seconds=120)
        assert sink.step() == 0 and sink.applied_events == expected_events
    finally:
        sink.close()
    source = source_rows(pg, table)
    diff = compare_rows(source, target.rows(), ["id"])
    assert diff.equal, diff.summary()
    assert len(target.rows()) == len(source) == 180


class CrashesBeforeTheGroupCommit(CdcSink):
    """A sink that dies in the window between its Iceberg commit and its consumer-group commit."""

    def _commit_group(self, offsets: Mapping[str, int]) -> None:
        return None


def test_a_restarted_sink_resumes_from_the_offsets_in_its_last_commit(
    stack: StackOutputs, pg: psycopg.Connection, postgres_capture, target: IcebergTarget
) -> None:
    table = postgres_capture(ITEMS)
    pg.execute(f"INSERT INTO {table.qualified} SELECT n, 'first ' || n, 1 FROM generate_series(1, 50) n")
    table.reader.wait_for_changes(50)
    group = unique_name("sink")
    first = CrashesBeforeTheGroupCommit(stack.kafka_bootstrap, [table.topic], target.writer(), group_id=group)
    try:
        first.run_until(lambda: first.applied_events >= 50, timeout_seconds=60)
    finally:
        first.consumer.close()
    recorded = committed_offsets(target.catalog.load_table(target.identifier))
    assert recorded == {f"{table.topic}:0": 50}
    assert group_offsets(stack.kafka_bootstrap, group, table.topic) is None, "the crash window was not reached"

    pg.execute(f"INSERT INTO {table.qualified} SELECT n, 'second ' || n, 2 FROM generate_series(51, 80) n")
    table.reader.wait_for_changes(80)
    second = sink_for(stack, table, target, group)
    try:
        second.run_until(lambda: second.applied_events >= 30, timeout_seconds=60)
        assert second.step() == 0
        assert second.applied_events == 30, "the restarted sink re-applied events the table already had"
    finally:
        second.close()
    assert group_offsets(stack.kafka_bootstrap, group, table.topic) == 80
    rows = target.rows()
    diff = compare_rows(source_rows(pg, table), rows, ["id"])
    assert diff.equal and len(rows) == 80, diff.summary()


def test_a_column_added_at_the_source_is_added_to_the_iceberg_table(
    stack: StackOutputs, pg: psycopg.Connection, postgres_capture, target: IcebergTarget
) -> None:
    table = postgres_capture(ITEMS)
    pg.execute(f"INSERT INTO {table.qualified} VALUES (1, 'before', 1)")
    pg.execute(f"ALTER TABLE {table.qualified} ADD COLUMN colour text")
    pg.execute(f"INSERT INTO {table.qualified} VALUES (2, 'after', 2, 'red')")
    table.reader.wait_for_changes(2)
    sink = sink_for(stack, table, target, unique_name("sink"))
    try:
        sink.run_until(lambda: sink.applied_events >= 2, timeout_seconds=60)
    finally:
        sink.close()
    iceberg = target.catalog.load_table(target.identifier)
    assert [column.name for column in iceberg.schema().fields] == ["id", "name", "qty", "colour"]
    assert sorted(target.rows(), key=lambda row: row["id"]) == [
        {"id": 1, "name": "before", "qty": 1, "colour": None},
        {"id": 2, "name": "after", "qty": 2, "colour": "red"},
    ]


def test_mysql_changes_land_in_iceberg_equal_to_the_source(
    stack: StackOutputs, mysql, mysql_capture, target: IcebergTarget
) -> None:
    table = mysql_capture("id int PRIMARY KEY, name varchar(64) NOT NULL, qty int NOT NULL")
    with mysql.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {table.qualified} VALUES (%s, %s, %s)", [(n, f"item {n}", n % 5) for n in range(1, 101)])
        cursor.execute(f"UPDATE {table.qualified} SET qty = 99 WHERE id <= 10")
        cursor.execute(f"DELETE FROM {table.qualified} WHERE id > 90")
    table.reader.wait_for_exactly_changes(120)
    sink = sink_for(stack, table, target, unique_name("sink"))
    try:
        sink.run_until(lambda: sink.applied_events >= 120, timeout_seconds=120)
        assert sink.step() == 0 and sink.applied_events == 120
    finally:
        sink.close()
    with mysql.cursor() as cursor:
        cursor.execute(f"SELECT id, name, qty FROM {table.qualified}")
        source = [dict(zip(("id", "name", "qty"), row)) for row in cursor.fetchall()]
    diff = compare_rows(source, target.rows(), ["id"])
    assert diff.equal, diff.summary()
    assert len(source) == 90


def test_postgres_column_types_arrive_in_iceberg_unchanged(
    stack: StackOutputs, pg: psycopg.Connection, postgres_capture, target: IcebergTarget
) -> None:
    import datetime as dt
    import decimal

    table = postgres_capture("id bigint PRIMARY KEY, price numeric(12,4), born date, seen_tz timestamptz, active boolean, note text")
    row = {
        "id": 9_000_000_000,
        "price": decimal.Decimal("12345678.9012"),
        "born": dt.date(1999, 12, 31),
        "seen_tz": dt.datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=dt.timezone.utc),
        "active": True,
        "note": "naïve café",
    }
    pg.execute(f"INSERT INTO {table.qualified} ({', '.join(row)}) VALUES ({', '.join(['%s'] * len(row))})", list(row.values()))
    table.reader.wait_for_changes(1)
    sink = sink_for(stack, table, target, unique_name("sink"))
    try:
        sink.run_until(lambda: sink.applied_events >= 1, timeout_seconds=60)
    finally:
        sink.close()
    assert target.rows() == [row]


def test_a_truncate_at_the_source_empties_the_iceberg_table(
    stack: StackOutputs, pg: psycopg.Connection, postgres_capture, target: IcebergTarget
) -> None:
    table = postgres_capture(ITEMS)
    pg.execute(f"INSERT INTO {table.qualified} SELECT n, 'n' || n, n FROM generate_series(1, 30) n")
    table.reader.wait_for_changes(30)
    sink = sink_for(stack, table, target, unique_name("sink"))
    try:
        sink.run_until(lambda: sink.applied_events >= 30, timeout_seconds=60)
        assert len(target.rows()) == 30
        pg.execute(f"TRUNCATE {table.qualified}")
        pg.execute(f"INSERT INTO {table.qualified} VALUES (99, 'after truncate', 1)")
        sink.run_until(lambda: sink.applied_events >= 32, timeout_seconds=60)
    finally:
        sink.close()
    assert target.rows() == [{"id": 99, "name": "after truncate", "qty": 1}]
