"""MySQL (MariaDB) → Debezium → Kafka → the stack's Delta sink → Delta Lake (FR-010, DQ-004): column
types preserved, row-by-row multiset parity with counts at every stage, updates and deletes, a
primary-key change, and a column added at the source."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from typing import Any

import pymysql
from pyspark.sql import SparkSession

from testkit.kafka import EventReader
from tests.support.delta import DeltaLake, comparable, mysql_rows, wait_for_delta_parity
from tests.support.lake import duplicate_keys, wait_for_job
from tests.support.stack import StackOutputs

ITEMS = "id int PRIMARY KEY, name varchar(64) NOT NULL, qty int NOT NULL"


def run(mysql: pymysql.connections.Connection, sql: str, args: Any = None) -> None:
    with mysql.cursor() as cursor:
        if isinstance(args, list) and args and isinstance(args[0], (list, tuple)):
            cursor.executemany(sql, args)
        else:
            cursor.execute(sql, args)


def test_mysql_column_types_are_preserved_in_delta(mysql: pymysql.connections.Connection, delta_mysql_table, delta_lake: DeltaLake, spark: SparkSession) -> None:
    table = delta_mysql_table(
        "id bigint PRIMARY KEY, price decimal(38,10), ratio double, active boolean, born date, seen datetime(6),"
        " attrs json, payload varbinary(32), note text CHARACTER SET utf8mb4, small smallint"
    )
    rows = [
        (
            n,
            decimal.Decimal(f"1234567890123456789012345678.012345678{n}"),
            0.25 * n,
            n % 2,
            dt.date(2000, 2, 29) + dt.timedelta(days=n),
            dt.datetime(2026, 1, 2, 3, 4, 5, 678901) + dt.timedelta(minutes=n),
            json.dumps({"n": n, "tags": ["x", "y"]}),
            bytes([n, 0, 255]),
            "ünïcode ✓",
            -n,
        )
        for n in range(1, 6)
    ]
    run(mysql, f"INSERT INTO {table.qualified} VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)
    run(mysql, f"INSERT INTO {table.qualified} (id) VALUES (100)")

    def as_delta_keeps(row: dict[str, Any]) -> dict[str, Any]:
        kept = dict(row)
        # MariaDB's JSON is text in its own spelling; compare it as data.
        if kept["attrs"] is not None:
            kept["attrs"] = json.loads(kept["attrs"])
        if kept["active"] is not None:
            kept["active"] = bool(kept["active"])
        return comparable(kept)

    result = wait_for_delta_parity(delta_lake, table, mysql_rows(mysql, table.qualified), normalize=as_delta_keeps)
    assert len(result.rows) == 6
    types = {field.name: field.dataType.simpleString() for field in spark.table(table.identifier).schema.fields}
    assert types == {
        "id": "bigint",
        "price": "decimal(38,10)",
        "ratio": "double",
        # BOOLEAN is tinyint(1) in MariaDB; Debezium sends it as a boolean again.
        "active": "boolean",
        "born": "date",
        "seen": "timestamp_ntz",
        "attrs": "string",
        "payload": "binary",
        "note": "string",
        "small": "int",
    }


def test_counts_agree_at_every_stage_from_mysql(
    stack: StackOutputs, mysql: pymysql.connections.Connection, delta_mysql_table, delta_lake: DeltaLake, spark: SparkSession
) -> None:
    table = delta_mysql_table(ITEMS)
    reader = EventReader(stack.kafka_bootstrap, table.topic)
    try:
        run(mysql, f"INSERT INTO {table.qualified} VALUES (%s, %s, %s)", [(n, f"item {n}", n) for n in range(1, 401)])
        run(mysql, f"UPDATE {table.qualified} SET qty = qty + 1 WHERE id % 4 = 0")
        run(mysql, f"DELETE FROM {table.qualified} WHERE id % 9 = 0")
        changes = 400 + 100 + 44
        assert len(reader.wait_for_exactly_changes(changes)) == changes
        result = wait_for_delta_parity(delta_lake, table, mysql_rows(mysql, table.qualified))
    finally:
        reader.close()
    with mysql.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table.qualified}")
        (source_count,) = cursor.fetchone()
    assert source_count == len(result.rows) == spark.table(table.identifier).count() == 400 - 44
    assert duplicate_keys(result.rows, ["id"]) == 0
    status = wait_for_job(stack, lambda _code, body: body["tables"].get(table.topic, {}).get("applied", 0) >= changes, "every change applied", sink="delta-sink")
    assert status["tables"][table.topic]["applied"] == changes and status["tables"][table.topic]["dead_letters"] == 0


def test_updates_and_deletes_from_mysql_leave_delta_equal_row_by_row(mysql: pymysql.connections.Connection, delta_mysql_table, delta_lake: DeltaLake) -> None:
    table = delta_mysql_table(ITEMS)
    run(mysql, f"INSERT INTO {table.qualified} VALUES (%s, %s, %s)", [(n, f"item {n}", n) for n in range(1, 21)])
    wait_for_delta_parity(delta_lake, table, mysql_rows(mysql, table.qualified))
    for round_number in range(3):
        run(mysql, f"UPDATE {table.qualified} SET qty = qty * 2, name = CONCAT(name, '+') WHERE id % 3 = {round_number}")
        run(mysql, f"DELETE FROM {table.qualified} WHERE id = {round_number + 1}")
        run(mysql, f"INSERT INTO {table.qualified} VALUES (%s, %s, %s)", (100 + round_number, f"new {round_number}", round_number))
    result = wait_for_delta_parity(delta_lake, table, mysql_rows(mysql, table.qualified))
    assert len(result.rows) == 20 and result.diff.equal


def test_a_primary_key_change_in_mysql_moves_the_row_in_delta(mysql: pymysql.connections.Connection, delta_mysql_table, delta_lake: DeltaLake, spark: SparkSession) -> None:
    table = delta_mysql_table(ITEMS)
    run(mysql, f"INSERT INTO {table.qualified} VALUES (1, 'a', 1), (2, 'b', 2)")
    wait_for_delta_parity(delta_lake, table, mysql_rows(mysql, table.qualified))
    run(mysql, f"UPDATE {table.qualified} SET id = 10 WHERE id = 1")
    result = wait_for_delta_parity(delta_lake, table, mysql_rows(mysql, table.qualified))
    assert sorted(row["id"] for row in result.rows) == [2, 10]
    assert spark.sql(f"SELECT count(*) AS n FROM {table.identifier} WHERE id = 1").first()["n"] == 0


def test_a_column_added_in_mysql_is_added_to_the_delta_table(mysql: pymysql.connections.Connection, delta_mysql_table, delta_lake: DeltaLake, spark: SparkSession) -> None:
    table = delta_mysql_table(ITEMS)
    run(mysql, f"INSERT INTO {table.qualified} VALUES (1, 'a', 1)")
    wait_for_delta_parity(delta_lake, table, mysql_rows(mysql, table.qualified))
    run(mysql, f"ALTER TABLE {table.qualified} ADD COLUMN weight decimal(10,3)")
    run(mysql, f"INSERT INTO {table.qualified} VALUES (2, 'b', 2, 1.250)")
    result = wait_for_delta_parity(delta_lake, table, mysql_rows(mysql, table.qualified))
    assert {row["id"]: row["weight"] for row in result.rows} == {1: None, 2: "1.250"}
    added = next(field for field in spark.table(table.identifier).schema.fields if field.name == "weight")
    assert added.dataType.simpleString() == "decimal(10,3)"
