"""Cross-storage: Postgres and MySQL through Kafka into Iceberg (and Delta) in the same environment, in parallel.

SC-009 and DQ-004: rows from both sources are written while both sinks run at once, and each
Iceberg table equals its source row by row, with counts matching at every stage; and one stream
from each source lands in Delta and in Iceberg with equal rows and types.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import psycopg
import pyarrow as pa
import pymysql
import pytest
from confluent_kafka.admin import AdminClient
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError

import stack_outputs as out
from pipelines.consistency import compare_rows
from pipelines.sinks.core import CdcSink
from pipelines.sinks.iceberg.writer import IcebergTableWriter
from pipelines.sinks.job import table_identifier
from testkit.iceberg import owned_namespace
from testkit.names import unique_name
from tests.conftest import mysql_table_captured, postgres_table_captured
from tests.support.cdc import CapturedTable
from tests.support.delta import comparable, mysql_rows, postgres_rows, wait_for_delta_parity
from tests.support.iceberg import catalog_of
from tests.support.lake import wait_for_parity
from tests.support.stack import StackOutputs
from tests.support.threads import CheckedThread, join_all, start_all

ROWS = 300
COLUMNS = ("id", "name", "qty")


@dataclass
class Flow:
    """One source table, its topic and the Iceberg table a sink keeps in step with it."""

    source: CapturedTable
    identifier: str
    read_source: Callable[[], list[dict]]
    write_source: Callable[[], None]
    sink: CdcSink | None = None


def run_sinks_in_parallel(flows: list[Flow], expected_events: int) -> None:
    def drive(flow: Flow) -> None:
        flow.sink.run_until(lambda: flow.sink.applied_events >= expected_events, timeout_seconds=180)

    threads = [CheckedThread(drive, f"sink-{flow.identifier}", args=(flow,)) for flow in flows]
    start_all(threads)
    join_all(threads, timeout_seconds=240)


@pytest.fixture(scope="module")
def catalog(stack: StackOutputs) -> Catalog:
    return catalog_of(stack)


@pytest.fixture(scope="module")
def flows(stack: StackOutputs, kafka_admin: AdminClient, catalog: Catalog) -> Iterator[list[Flow]]:
    """A Postgres flow and a MySQL flow, each writing ROWS rows, then updates and deletes; one pair
    for the module, since every test below only reads what the same run left."""
    stack.require_connector_running(stack[out.POSTGRES_CONNECTOR])
    stack.require_connector_running(stack[out.MYSQL_CONNECTOR])
    with ExitStack() as owned:
        pg = owned.enter_context(psycopg.connect(stack.postgres_dsn, autocommit=True))
        mysql = owned.enter_context(pymysql.connect(**stack.mysql, autocommit=True))
        namespace = owned.enter_context(owned_namespace(catalog, "cross"))
        pg_table = owned.enter_context(postgres_table_captured(stack, pg, kafka_admin, "id integer PRIMARY KEY, name text NOT NULL, qty integer NOT NULL"))
        my_table = owned.enter_context(mysql_table_captured(stack, mysql, kafka_admin, "id int PRIMARY KEY, name varchar(64) NOT NULL, qty int NOT NULL"))

        def write_postgres() -> None:
            with psycopg.connect(stack.postgres_dsn, autocommit=True) as session:
                for row_id in range(1, ROWS + 1):
                    session.execute(f"INSERT INTO {pg_table.qualified} VALUES (%s, %s, %s)", [row_id, f"pg {row_id}", row_id % 7])
                session.execute(f"UPDATE {pg_table.qualified} SET qty = -1 WHERE id % 10 = 0")
                session.execute(f"DELETE FROM {pg_table.qualified} WHERE id > {ROWS - 20}")

        def write_mysql() -> None:
            with pymysql.connect(**stack.mysql, autocommit=True) as session, session.cursor() as cursor:
                for row_id in range(1, ROWS + 1):
                    cursor.execute(f"INSERT INTO {my_table.qualified} VALUES (%s, %s, %s)", [row_id, f"my {row_id}", row_id % 7])
                cursor.execute(f"UPDATE {my_table.qualified} SET qty = -1 WHERE id % 10 = 0")
                cursor.execute(f"DELETE FROM {my_table.qualified} WHERE id > {ROWS - 20}")

        def read_postgres() -> list[dict]:
            return [dict(zip(COLUMNS, row)) for row in pg.execute(f"SELECT id, name, qty FROM {pg_table.qualified}").fetchall()]

        def read_mysql() -> list[dict]:
            with mysql.cursor() as cursor:
                cursor.execute(f"SELECT id, name, qty FROM {my_table.qualified}")
                return [dict(zip(COLUMNS, row)) for row in cursor.fetchall()]

        built = [
            Flow(pg_table, f"{namespace}.from_postgres", read_postgres, write_postgres),
            Flow(my_table, f"{namespace}.from_mysql", read_mysql, write_mysql),
        ]
        for flow in built:
            flow.sink = CdcSink(
                stack.kafka_bootstrap, [flow.source.topic], IcebergTableWriter(catalog, flow.identifier), group_id=unique_name("cross")
            )
        try:
            yield built
        finally:
            for flow in built:
                flow.sink.close()


EXPECTED_EVENTS = ROWS + ROWS // 10 + 20


@pytest.fixture(scope="module")
def landed(flows: list[Flow]) -> list[Flow]:
    """Both sources written at once, both sinks run at once, until every change has landed."""
    writers = [CheckedThread(flow.write_source, f"writer-{flow.source.qualified}") for flow in flows]
    start_all(writers)
    join_all(writers, timeout_seconds=120)
    run_sinks_in_parallel(flows, EXPECTED_EVENTS)
    return flows


def iceberg_rows(catalog: Catalog, identifier: str) -> list[dict]:
    return catalog.load_table(identifier).scan().to_arrow().to_pylist()


def test_postgres_rows_in_iceberg_equal_the_source(landed: list[Flow], catalog: Catalog) -> None:
    postgres = landed[0]
    diff = compare_rows(postgres.read_source(), iceberg_rows(catalog, postgres.identifier), ["id"])
    assert diff.equal, diff.summary()


def test_mysql_rows_in_iceberg_equal_the_source(landed: list[Flow], catalog: Catalog) -> None:
    mysql = landed[1]
    diff = compare_rows(mysql.read_source(), iceberg_rows(catalog, mysql.identifier), ["id"])
    assert diff.equal, diff.summary()


def test_counts_match_at_every_stage(landed: list[Flow], catalog: Catalog) -> None:
    for flow in landed:
        source_count = len(flow.read_source())
        kafka_events = len(flow.source.reader.wait_for_exactly_changes(EXPECTED_EVENTS))
        assert (source_count, kafka_events, flow.sink.applied_events, len(iceberg_rows(catalog, flow.identifier))) == (
            ROWS - 20,
            EXPECTED_EVENTS,
            EXPECTED_EVENTS,
            ROWS - 20,
        ), flow.identifier


def test_both_flows_have_the_same_shape_of_data(landed: list[Flow], catalog: Catalog) -> None:
    """Parity: the same workload against both sources leaves the same ids and quantities."""
    postgres, mysql = (sorted(iceberg_rows(catalog, flow.identifier), key=lambda row: row["id"]) for flow in landed)
    assert [(row["id"], row["qty"]) for row in postgres] == [(row["id"], row["qty"]) for row in mysql]


def test_each_iceberg_commit_records_where_its_source_topic_was(landed: list[Flow], catalog: Catalog) -> None:
    from pipelines.sinks.iceberg.writer import committed_offsets

    for flow in landed:
        recorded = committed_offsets(catalog.load_table(flow.identifier))
        assert list(recorded) == [f"{flow.source.topic}:0"]
        # Every record of the topic: the change events and the tombstone after each of the 20 deletes.
        assert recorded[f"{flow.source.topic}:0"] == EXPECTED_EVENTS + 20


def test_no_change_was_dead_lettered(landed: list[Flow]) -> None:
    for flow in landed:
        assert flow.sink.stats.dead_letters == 0, (flow.identifier, flow.sink.stats.last_dead_letter_error)


ONE_STREAM_COLUMNS = {
    "postgres": "id integer PRIMARY KEY, name text NOT NULL, price numeric(12,4), seen timestamp, seen_tz timestamptz, born date, ratio double precision",
    "mysql": "id int PRIMARY KEY, name varchar(64) NOT NULL, price decimal(12,4), seen datetime(6), seen_tz timestamp(6) NULL, born date, ratio double",
}


def arrow_kind(data_type: Any) -> str:
    """An Arrow type as both lakes' readers can agree on it (string/large_string/string_view alike,
    timestamps by unit and whether they carry a zone)."""
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type) or str(data_type) == "string_view":
        return "string"
    if pa.types.is_timestamp(data_type):
        return f"timestamp[{data_type.unit}{', utc' if data_type.tz else ''}]"
    return str(data_type)


@pytest.mark.parametrize("source", ["postgres", "mysql"])
def test_one_stream_lands_equal_in_delta_and_iceberg(
    source: str, pg: psycopg.Connection, mysql: pymysql.connections.Connection, delta_postgres_table, delta_mysql_table, delta_lake, catalog: Catalog, stack: StackOutputs
) -> None:
    """SC-009: a `both_` table is replicated by the Delta and the Iceberg sink from the same topic;
    both lakes equal the source and each other, row by row and type by type."""

    create = delta_postgres_table if source == "postgres" else delta_mysql_table
    table = create(ONE_STREAM_COLUMNS[source], prefix="both")
    rows = [
        (n, f"{source} {n}", decimal.Decimal(f"{n}.{n:04d}"), dt.datetime(2026, 5, 6, 7, 8, 9, n), dt.datetime(2026, 5, 6, 7, 8, 9, n, tzinfo=dt.timezone.utc), dt.date(2020, 1, 1) + dt.timedelta(days=n), n / 8)
        for n in range(1, 101)
    ]
    insert = f"INSERT INTO {table.qualified} VALUES (%s, %s, %s, %s, %s, %s, %s)"
    if source == "postgres":
        with pg.cursor() as cursor:
            cursor.executemany(insert, rows)
        pg.execute(f"UPDATE {table.qualified} SET price = price * 2 WHERE id % 3 = 0")
        pg.execute(f"DELETE FROM {table.qualified} WHERE id % 10 = 0")
        read_source = postgres_rows(pg, table.qualified)
    else:
        with mysql.cursor() as cursor:
            cursor.execute("SET time_zone = '+00:00'")
            cursor.executemany(insert, [(*row[:4], row[4].replace(tzinfo=None), *row[5:]) for row in rows])
            cursor.execute(f"UPDATE {table.qualified} SET price = price * 2 WHERE id % 3 = 0")
            cursor.execute(f"DELETE FROM {table.qualified} WHERE id % 10 = 0")
        read_source = mysql_rows(mysql, table.qualified)

    def utc(row: dict[str, Any]) -> dict[str, Any]:
        # MariaDB hands its TIMESTAMP back without a zone: it was written in UTC above.
        if isinstance(row.get("seen_tz"), dt.datetime) and row["seen_tz"].tzinfo is None:
            row = {**row, "seen_tz": row["seen_tz"].replace(tzinfo=dt.timezone.utc)}
        return comparable(row)

    in_delta = wait_for_delta_parity(delta_lake, table, read_source, normalize=utc)
    identifier = table_identifier(stack[out.ICEBERG_SINK_NAMESPACE], table.topic)
    in_iceberg = wait_for_parity(read_source, lambda: iceberg_rows_if_any(catalog, identifier), ["id"], f"iceberg-sink: {identifier}", 180.0, utc)
    assert len(in_delta.rows) == len(in_iceberg.rows) == 90
    assert compare_rows(in_delta.rows, in_iceberg.rows, ["id"]).equal
    delta_schema = delta_lake.open(table.table).to_pyarrow_table().schema
    iceberg_schema = catalog.load_table(identifier).schema().as_arrow()
    assert {f.name: arrow_kind(f.type) for f in delta_schema} == {f.name: arrow_kind(f.type) for f in iceberg_schema}


def iceberg_rows_if_any(catalog: Catalog, identifier: str) -> list[dict]:
    try:
        return iceberg_rows(catalog, identifier)
    except NoSuchTableError:
        return []
