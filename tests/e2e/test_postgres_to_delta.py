"""Postgres → Debezium → Kafka → the stack's Delta sink → Delta Lake (FR-010, DQ-004): every column type
equal, row-by-row multiset parity with counts at every stage, schema changes, unchanged TOASTed
values, and a sink killed mid-batch that loses and duplicates nothing."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from typing import Any

import psycopg
import psycopg.types.json
from pyspark.sql import SparkSession

import stack_outputs as out
from testkit.kafka import EventReader
from tests.support.delta import DeltaLake, comparable, postgres_rows, wait_for_delta_parity
from tests.support.lake import LoadWriter, duplicate_keys, job_status, wait_for_job
from tests.support.services import kill_service_process, restore_stack, wait_until_restarted
from tests.support.stack import StackOutputs

ITEMS = "id integer PRIMARY KEY, name text NOT NULL, qty integer NOT NULL"
KILL_RESTART_SECONDS = 180.0
"""A restarted sink starts a new Spark driver and gets a new executor before it is healthy."""


def without_trailing_zeros(text: str) -> str:
    """Decimal text as Debezium sends a variable-scale numeric (Decimal.normalize would round at 28 digits)."""
    return text.rstrip("0").rstrip(".") if "." in text else text


def test_every_postgres_column_type_arrives_equal_in_delta(pg: psycopg.Connection, delta_postgres_table, delta_lake: DeltaLake, spark: SparkSession) -> None:
    table = delta_postgres_table(
        "id bigint PRIMARY KEY, price numeric(38,10), exact numeric, ratio double precision, active boolean, born date,"
        " seen timestamp, seen_tz timestamptz, token uuid, attrs jsonb, blob bytea, tags text[], counts int[], note text"
    )
    rows = [
        {
            "id": 9_000_000_000 + n,
            "price": decimal.Decimal(f"1234567890123456789012345678.012345678{n}"),
            "exact": decimal.Decimal(f"3.1415926535897932384626433832795028841{n + 1}0"),
            "ratio": 0.125 * n,
            "active": n % 2 == 0,
            "born": dt.date(1999, 12, 31) + dt.timedelta(days=n),
            "seen": dt.datetime(2026, 3, 4, 5, 6, 7, 891011) + dt.timedelta(hours=n),
            "seen_tz": dt.datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            "token": uuid.UUID(int=n + 1),
            "attrs": {"color": "red", "sizes": [1, 2, n]},
            "blob": bytes([0, 255, n]),
            "tags": ["a", f"t{n}"],
            "counts": [n, n + 1],
            "note": "naïve café – ünïcode",
        }
        for n in range(5)
    ]
    nulls = {"id": 1, **{column: None for column in rows[0] if column != "id"}}
    columns = ", ".join(rows[0])
    placeholders = ", ".join(["%s"] * len(rows[0]))
    with pg.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table.qualified} ({columns}) VALUES ({placeholders})",
            [[psycopg.types.json.Jsonb(value) if column == "attrs" and value is not None else value for column, value in row.items()] for row in [*rows, nulls]],
        )

    def as_delta_keeps(row: dict[str, Any]) -> dict[str, Any]:
        # Variable-scale numerics, JSON and UUIDs are kept as text (no Delta type holds them
        # exactly); Debezium writes a variable-scale numeric without its trailing zeros.
        kept = dict(row)
        if kept["exact"] is not None:
            kept["exact"] = without_trailing_zeros(format(decimal.Decimal(kept["exact"]), "f"))
        if isinstance(kept["attrs"], str):
            kept["attrs"] = json.loads(kept["attrs"])
        if kept["token"] is not None:
            kept["token"] = str(kept["token"])
        return comparable(kept)

    result = wait_for_delta_parity(delta_lake, table, postgres_rows(pg, table.qualified), normalize=as_delta_keeps)
    assert len(result.rows) == 6
    types = {field.name: field.dataType.simpleString() for field in spark.table(table.identifier).schema.fields}
    assert types == {
        "id": "bigint",
        "price": "decimal(38,10)",
        "exact": "string",
        "ratio": "double",
        "active": "boolean",
        "born": "date",
        "seen": "timestamp_ntz",
        "seen_tz": "timestamp",
        "token": "string",
        "attrs": "string",
        "blob": "binary",
        "tags": "array<string>",
        "counts": "array<int>",
        "note": "string",
    }


def test_counts_agree_at_every_stage_and_rows_match_as_multisets(
    stack: StackOutputs, pg: psycopg.Connection, delta_postgres_table, delta_lake: DeltaLake, spark: SparkSession
) -> None:
    table = delta_postgres_table(ITEMS)
    reader = EventReader(stack.kafka_bootstrap, table.topic)
    try:
        pg.execute(f"INSERT INTO {table.qualified} SELECT n, 'item ' || n, n FROM generate_series(1, 500) AS n")
        pg.execute(f"UPDATE {table.qualified} SET qty = qty * 10 WHERE id % 5 = 0")
        pg.execute(f"DELETE FROM {table.qualified} WHERE id % 7 = 0")
        changes = 500 + 100 + 71
        events = reader.wait_for_exactly_changes(changes)
        assert len(events) == changes
        result = wait_for_delta_parity(delta_lake, table, postgres_rows(pg, table.qualified))
    finally:
        reader.close()
    source_count = pg.execute(f"SELECT count(*) FROM {table.qualified}").fetchone()[0]
    assert source_count == len(result.rows) == spark.table(table.identifier).count() == 500 - 71
    assert duplicate_keys(result.rows, ["id"]) == 0 and result.diff.equal
    status = wait_for_job(stack, lambda _code, body: body["tables"].get(table.topic, {}).get("applied", 0) >= changes, "every change applied", sink="delta-sink")
    assert status["tables"][table.topic]["applied"] == changes and status["tables"][table.topic]["dead_letters"] == 0


def test_a_column_added_in_postgres_is_added_to_the_delta_table(pg: psycopg.Connection, delta_postgres_table, delta_lake: DeltaLake, spark: SparkSession) -> None:
    table = delta_postgres_table(ITEMS)
    pg.execute(f"INSERT INTO {table.qualified} VALUES (1, 'a', 1), (2, 'b', 2)")
    wait_for_delta_parity(delta_lake, table, postgres_rows(pg, table.qualified))
    pg.execute(f"ALTER TABLE {table.qualified} ADD COLUMN colour text")
    pg.execute(f"INSERT INTO {table.qualified} VALUES (3, 'c', 3, 'red')")
    pg.execute(f"UPDATE {table.qualified} SET colour = 'blue' WHERE id = 1")
    result = wait_for_delta_parity(delta_lake, table, postgres_rows(pg, table.qualified))
    assert sorted(result.rows, key=lambda row: row["id"])[1] == {"id": 2, "name": "b", "qty": 2, "colour": None}
    assert [field.name for field in spark.table(table.identifier).schema.fields] == ["id", "name", "qty", "colour"]


def test_an_unchanged_toasted_value_is_kept_when_another_column_changes(pg: psycopg.Connection, delta_postgres_table, delta_lake: DeltaLake) -> None:
    table = delta_postgres_table("id integer PRIMARY KEY, qty integer NOT NULL, document text")
    # Random text does not compress, so Postgres moves it out of line (TOAST); an update that leaves
    # it alone sends Debezium's placeholder instead of the value.
    document = "".join(uuid.uuid4().hex for _ in range(20_000))
    pg.execute(f"ALTER TABLE {table.qualified} REPLICA IDENTITY DEFAULT")
    pg.execute(f"INSERT INTO {table.qualified} VALUES (1, 1, %s), (2, 2, 'small')", [document])
    wait_for_delta_parity(delta_lake, table, postgres_rows(pg, table.qualified))
    pg.execute(f"UPDATE {table.qualified} SET qty = 10 WHERE id = 1")
    result = wait_for_delta_parity(delta_lake, table, postgres_rows(pg, table.qualified))
    kept = next(row for row in result.rows if row["id"] == 1)
    assert kept["qty"] == 10 and kept["document"] == document


def test_a_sink_killed_mid_batch_loses_and_duplicates_nothing(stack: StackOutputs, pg: psycopg.Connection, delta_postgres_table, delta_lake: DeltaLake) -> None:
    table = delta_postgres_table(ITEMS)
    load = LoadWriter(stack.postgres_dsn, table.qualified, rows=3000, batch=100, pause_after=1000).start()
    load.wait_paused()
    wait_for_job(
        stack,
        lambda _code, status: status["tables"].get(table.topic, {}).get("applied", 0) > 0,
        f"the first rows of {table.qualified} applied",
        180.0,
        "delta-sink",
    )
    _, before = job_status(stack, "delta-sink")
    killed, restarts = kill_service_process(stack, "delta-sink")
    try:
        load.resume()
        seconds = wait_until_restarted(
            stack, "delta-sink", killed, restarts, {"kind": "http", "url": stack[out.DELTA_SINK_HEALTH_URL], "status": 200}, KILL_RESTART_SECONDS
        )
        load.join_checked()
        result = wait_for_delta_parity(delta_lake, table, postgres_rows(pg, table.qualified), timeout=240.0)
    except BaseException:
        restore_stack(stack)
        raise
    assert duplicate_keys(result.rows, ["id"]) == 0
    assert len(result.rows) == 3000 - 3000 // 11
    _, status = job_status(stack, "delta-sink")
    # A new process (on docker the pid may come back, the container's pid namespace starts over).
    assert status["started_at"] > before["started_at"], f"back in {seconds:.0f}s: {status}"
    assert status["tables"][table.topic]["last_error"] is None, f"back in {seconds:.0f}s: {status}"
