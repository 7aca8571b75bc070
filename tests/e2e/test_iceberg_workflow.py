"""End to end: the stack's seeded sources, its connectors and topics, into Iceberg, and back in time."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pymysql
import pytest
from pyiceberg.catalog import Catalog

import stack_outputs as out
from pipelines.consistency import compare_rows
from pipelines.sinks.core import CdcSink
from pipelines.sinks.iceberg.writer import IcebergTableWriter
from pipelines.sinks.iceberg.snapshots import commit_containing, rows_at
from testkit.iceberg import owned_namespace
from testkit.names import unique_name
from tests.support.iceberg import catalog_of
from tests.support.stack import StackOutputs

PRODUCT_COLUMNS = ("id", "name", "description", "weight_kg", "price", "created_on")


@pytest.fixture
def catalog(stack: StackOutputs) -> Catalog:
    return catalog_of(stack)


@pytest.fixture
def namespace(catalog: Catalog) -> Iterator[str]:
    with owned_namespace(catalog, "e2e") as name:
        yield name


def replicate(stack: StackOutputs, catalog: Catalog, topic: str, identifier: str, until_rows: int) -> IcebergTableWriter:
    """Runs a sink over a whole stack topic until the Iceberg table holds `until_rows` rows and the topic is drained."""
    writer = IcebergTableWriter(catalog, identifier)
    sink = CdcSink(stack.kafka_bootstrap, [topic], writer, group_id=unique_name("e2e"))
    try:
        sink.run_until(lambda: writer.load() is not None and len(writer.table.scan().to_arrow()) >= until_rows, 120)
        while sink.step():
            pass
    finally:
        sink.close()
    return writer


def test_seeded_postgres_products_replicate_to_iceberg(stack: StackOutputs, pg: psycopg.Connection, catalog: Catalog, namespace: str) -> None:
    stack.require_connector_running(stack[out.POSTGRES_CONNECTOR])
    source = [dict(zip(PRODUCT_COLUMNS, row)) for row in pg.execute(f"SELECT {', '.join(PRODUCT_COLUMNS)} FROM inventory.products").fetchall()]
    topic = f"{stack[out.POSTGRES_TOPIC_PREFIX]}.inventory.products"
    writer = replicate(stack, catalog, topic, f"{namespace}.products", len(source))
    diff = compare_rows(source, writer.table.scan().to_arrow().to_pylist(), ["id"], PRODUCT_COLUMNS)
    assert diff.equal, diff.summary()


def test_seeded_mysql_products_replicate_to_iceberg(
    stack: StackOutputs, mysql: pymysql.connections.Connection, catalog: Catalog, namespace: str
) -> None:
    stack.require_connector_running(stack[out.MYSQL_CONNECTOR])
    with mysql.cursor(pymysql.cursors.DictCursor) as cursor:
        cursor.execute(f"SELECT {', '.join(PRODUCT_COLUMNS)} FROM inventory.products")
        source = cursor.fetchall()
    topic = f"{stack[out.MYSQL_TOPIC_PREFIX]}.inventory.products"
    writer = replicate(stack, catalog, topic, f"{namespace}.products", len(source))
    diff = compare_rows(source, writer.table.scan().to_arrow().to_pylist(), ["id"], PRODUCT_COLUMNS)
    assert diff.equal, diff.summary()


def test_a_sink_restarted_mid_stream_loses_and_duplicates_nothing(
    stack: StackOutputs, pg: psycopg.Connection, postgres_capture, catalog: Catalog, namespace: str
) -> None:
    table = postgres_capture("id integer PRIMARY KEY, note text NOT NULL")
    pg.execute(f"INSERT INTO {table.qualified} SELECT n, 'n' || n FROM generate_series(1, 500) n")
    table.reader.wait_for_changes(500)
    identifier = f"{namespace}.restart"
    first = CdcSink(stack.kafka_bootstrap, [table.topic], IcebergTableWriter(catalog, identifier), unique_name("e2e"), batch_max_events=100)
    try:
        first.run_until(lambda: first.applied_events >= 200, 60)
    finally:
        first.close()
    pg.execute(f"UPDATE {table.qualified} SET note = 'updated' WHERE id % 3 = 0")
    table.reader.wait_for_changes(500 + 166)
    second = CdcSink(stack.kafka_bootstrap, [table.topic], IcebergTableWriter(catalog, identifier), unique_name("e2e"), batch_max_events=100)
    try:
        second.run_until(lambda: first.applied_events + second.applied_events >= 666, 120)
    finally:
        second.close()
    assert first.applied_events + second.applied_events == 666, "events were applied twice or skipped"
    rows = catalog.load_table(identifier).scan().to_arrow().to_pylist()
    source = [{"id": row_id, "note": note} for row_id, note in pg.execute(f"SELECT id, note FROM {table.qualified}").fetchall()]
    diff = compare_rows(source, rows, ["id"])
    assert diff.equal and len(rows) == 500, diff.summary()


def test_the_commit_holding_a_change_shows_the_table_as_of_that_change(
    stack: StackOutputs, pg: psycopg.Connection, postgres_capture, catalog: Catalog, namespace: str
) -> None:
    table = postgres_capture("id integer PRIMARY KEY, price numeric(8,2) NOT NULL")
    identifier = f"{namespace}.prices"
    writer = IcebergTableWriter(catalog, identifier)
    sink = CdcSink(stack.kafka_bootstrap, [table.topic], writer, unique_name("e2e"))
    try:
        pg.execute(f"INSERT INTO {table.qualified} VALUES (1, 10.00)")
        sink.run_until(lambda: sink.applied_events >= 1, 60)
        pg.execute(f"UPDATE {table.qualified} SET price = 12.50 WHERE id = 1")
        sink.run_until(lambda: sink.applied_events >= 2, 60)
    finally:
        sink.close()
    iceberg = catalog.load_table(identifier)
    first_change = commit_containing(iceberg, table.topic, 0, 0)
    assert first_change is not None
    assert [str(row["price"]) for row in rows_at(iceberg, first_change.snapshot_id)] == ["10.00"]
    assert [str(row["price"]) for row in iceberg.scan().to_arrow().to_pylist()] == ["12.50"]
