"""MySQL-protocol changes through the binlog, the stack's Debezium connector and Kafka, compared exactly."""

from __future__ import annotations

import datetime as dt
import decimal

import pymysql

import stack_outputs as out
from pipelines.consistency import compare_rows, materialize
from pipelines.debezium import ChangeEvent, Tombstone
from testkit.kafka import EventReader, changes
from tests.support.cdc import rows_of
from tests.support.stack import StackOutputs

ITEMS = "id int PRIMARY KEY, name varchar(64) NOT NULL, qty int NOT NULL"


def run(mysql: pymysql.connections.Connection, *statements: str) -> None:
    with mysql.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def test_insert_arrives_as_a_create_with_the_full_row(mysql: pymysql.connections.Connection, mysql_capture) -> None:
    table = mysql_capture(ITEMS)
    run(mysql, f"INSERT INTO {table.qualified} VALUES (1, 'bolt', 10), (2, 'nut', 20)")
    events = table.reader.wait_for_changes(2)
    assert [(e.op, e.before, e.after) for e in events] == [
        ("c", None, {"id": 1, "name": "bolt", "qty": 10}),
        ("c", None, {"id": 2, "name": "nut", "qty": 20}),
    ]
    assert events[0].key == {"id": 1} and events[0].source.table == table.name and events[0].source.database == "inventory"


def test_update_carries_the_before_and_after_images(mysql: pymysql.connections.Connection, mysql_capture) -> None:
    table = mysql_capture(ITEMS)
    run(mysql, f"INSERT INTO {table.qualified} VALUES (1, 'bolt', 10)", f"UPDATE {table.qualified} SET qty = 11 WHERE id = 1")
    update = table.reader.wait_for_changes(2)[1]
    assert (update.op, update.before, update.after) == ("u", {"id": 1, "name": "bolt", "qty": 10}, {"id": 1, "name": "bolt", "qty": 11})


def test_delete_is_followed_by_a_tombstone(mysql: pymysql.connections.Connection, mysql_capture) -> None:
    table = mysql_capture(ITEMS)
    run(mysql, f"INSERT INTO {table.qualified} VALUES (5, 'washer', 1)", f"DELETE FROM {table.qualified} WHERE id = 5")
    events = table.reader.wait_until(lambda events: any(isinstance(e, Tombstone) for e in events), "a tombstone")
    assert [getattr(e, "op", "tombstone") for e in events] == ["c", "d", "tombstone"]
    assert events[1].before == {"id": 5, "name": "washer", "qty": 1}


def test_primary_key_change_is_a_delete_and_a_create(mysql: pymysql.connections.Connection, mysql_capture) -> None:
    table = mysql_capture(ITEMS)
    run(mysql, f"INSERT INTO {table.qualified} VALUES (1, 'gear', 3)", f"UPDATE {table.qualified} SET id = 100 WHERE id = 1")
    events = table.reader.wait_for_changes(3)
    assert [(e.op, e.key) for e in events] == [("c", {"id": 1}), ("d", {"id": 1}), ("c", {"id": 100})]
    assert materialize(events, ["id"]) == {(100,): {"id": 100, "name": "gear", "qty": 3}}


def test_truncate_arrives_as_a_truncate_event(mysql: pymysql.connections.Connection, mysql_capture) -> None:
    table = mysql_capture(ITEMS)
    run(mysql, f"INSERT INTO {table.qualified} VALUES (1, 'a', 1), (2, 'b', 2)", f"TRUNCATE TABLE {table.qualified}")
    events = table.reader.wait_for_changes(3)
    assert [e.op for e in events] == ["c", "c", "t"]


def test_a_transaction_of_many_rows_arrives_whole_and_in_order(mysql: pymysql.connections.Connection, mysql_capture) -> None:
    table = mysql_capture(ITEMS)
    mysql.begin()
    with mysql.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {table.qualified} VALUES (%s, %s, %s)", [(n, f"item {n}", n % 7) for n in range(1000)])
    mysql.commit()
    events = table.reader.wait_for_changes(1000)
    assert [e.after["id"] for e in events] == list(range(1000))
    with mysql.cursor(pymysql.cursors.DictCursor) as cursor:
        cursor.execute(f"SELECT id, name, qty FROM {table.qualified}")
        source = cursor.fetchall()
    diff = compare_rows(source, rows_of(events, "c"), ["id"])
    assert diff.equal, diff.summary()


def test_changes_to_one_key_keep_their_binlog_order(mysql: pymysql.connections.Connection, mysql_capture) -> None:
    table = mysql_capture(ITEMS)
    run(mysql, f"INSERT INTO {table.qualified} VALUES (1, 'counter', 0)")
    run(mysql, *[f"UPDATE {table.qualified} SET qty = {value} WHERE id = 1" for value in range(1, 31)])
    events = table.reader.wait_for_changes(31)
    assert [e.after["qty"] for e in events] == list(range(31))
    positions = [(e.source.binlog_file, e.source.binlog_pos) for e in events]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)


def test_column_types_round_trip_exactly(mysql: pymysql.connections.Connection, mysql_capture) -> None:
    table = mysql_capture(
        "id bigint PRIMARY KEY, price decimal(12,4), ratio double, born date, seen datetime(6), opens time(6),"
        " blob_col varbinary(32), note varchar(64) CHARACTER SET utf8mb4"
    )
    row = {
        "id": 9_000_000_000,
        "price": decimal.Decimal("12345678.9012"),
        "ratio": 0.125,
        "born": dt.date(1999, 12, 31),
        "seen": dt.datetime(2026, 3, 4, 5, 6, 7, 891011),
        "opens": dt.time(9, 30, 15, 250000),
        "blob_col": b"\x00\xffbinary\x10",
        "note": "naïve café – ünïcode",
    }
    with mysql.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table.qualified} ({', '.join(row)}) VALUES ({', '.join(['%s'] * len(row))})", list(row.values())
        )
    [event] = table.reader.wait_for_changes(1)
    assert event.after == row


def test_seeded_tables_were_snapshotted_row_for_row(stack: StackOutputs, mysql: pymysql.connections.Connection) -> None:
    """DQ-001/DQ-004: the connector's snapshot of inventory.products equals the source table."""
    stack.require_connector_running(stack[out.MYSQL_CONNECTOR])
    reader = EventReader(stack.kafka_bootstrap, f"{stack[out.MYSQL_TOPIC_PREFIX]}.inventory.products")
    try:
        reader.wait_until(lambda events: sum(getattr(e, "op", "") == "r" for e in events) >= 5, "the snapshot of products")
        events = reader.drain()
    finally:
        reader.close()
    snapshot = [e for e in events if isinstance(e, ChangeEvent) and e.op == "r"]
    assert all(e.source.snapshot for e in snapshot)
    arrived = materialize(changes(events), ["id"])
    with mysql.cursor(pymysql.cursors.DictCursor) as cursor:
        cursor.execute("SELECT id, name, description, weight_kg, price, created_on FROM inventory.products")
        source = cursor.fetchall()
    diff = compare_rows(source, arrived.values(), ["id"], ["id", "name", "description", "weight_kg", "price", "created_on"])
    assert diff.equal, diff.summary()
    # The reads themselves, as a list: materialize keeps one row per key, so it cannot see a row read twice.
    reads = compare_rows(source, rows_of(snapshot, "r"), ["id"], ["id"])
    assert reads.equal, f"each row should be read once by the snapshot: {reads.summary()}"


def test_events_name_their_binlog_position_and_connector(mysql: pymysql.connections.Connection, mysql_capture, stack: StackOutputs) -> None:
    table = mysql_capture(ITEMS)
    run(mysql, f"INSERT INTO {table.qualified} VALUES (1, 'x', 1)")
    [event] = table.reader.wait_for_changes(1)
    expected_connector = "mariadb" if stack[out.RUNTIME] == "process" else "mysql"
    assert event.source.connector == expected_connector
    assert event.source.binlog_file.startswith("binlog.") and event.source.binlog_pos > 4
    assert event.source.ts_ms > 0 and not event.source.snapshot
