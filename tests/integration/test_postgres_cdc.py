"""Postgres changes through the stack's Debezium connector into Kafka, decoded and compared exactly."""

from __future__ import annotations

import datetime as dt
import decimal
import logging
import uuid

import psycopg
import pytest
from confluent_kafka import Consumer, Producer
from pyspark.sql import SparkSession

import stack_outputs as out
from pipelines.consistency import compare_rows, materialize
from pipelines.debezium import ChangeEvent, Tombstone
from pipelines.lag import measure_lag
from testkit.kafka import EventReader, changes, consume_exactly
from testkit.names import unique_name
from tests.support.cdc import rows_of
from tests.support.delta import DeltaLake, change_feed, postgres_rows, wait_for_delta_parity
from tests.support.stack import StackOutputs

log = logging.getLogger(__name__)

LAG_THRESHOLD_MS = 5_000
ITEMS = "id integer PRIMARY KEY, name text NOT NULL, qty integer NOT NULL"


def test_cdc_lag_within_threshold(stack: StackOutputs, pg: psycopg.Connection, postgres_capture) -> None:
    """DQ-005: source commit to event in Kafka, over 100 committed changes; p95 under 5 s."""
    table = postgres_capture("marker_id integer PRIMARY KEY, committed_at timestamptz NOT NULL DEFAULT clock_timestamp()")
    consumer = Consumer(
        {
            "bootstrap.servers": stack.kafka_bootstrap,
            "group.id": unique_name("lag_probe"),
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 10,
        }
    )
    consumer.subscribe([table.topic])
    try:
        report = measure_lag(
            commit_marker=lambda marker: pg.execute(f"INSERT INTO {table.qualified} (marker_id) VALUES (%s)", [marker]),
            consumer=consumer,
            marker_of=lambda event: event.after.get("marker_id") if event.after else None,
            count=120,
            rate_per_second=40,
        )
    finally:
        consumer.close()
    log.info("postgres CDC lag: %s", report.describe())
    print(f"\npostgres CDC lag: {report.describe()}")
    assert report.complete, f"only {report.describe()}"
    assert report.percentile(0.95) < LAG_THRESHOLD_MS, report.describe()


def test_an_event_delivered_twice_fails_the_exact_count(stack: StackOutputs, pg: psycopg.Connection, postgres_capture) -> None:
    """Connect redelivers after a crash: a Kafka-stage count must see the copy, not stop at N."""
    table = postgres_capture(ITEMS)
    pg.execute(f"INSERT INTO {table.qualified} VALUES (1, 'bolt', 10)")
    pg.execute(f"UPDATE {table.qualified} SET qty = 11 WHERE id = 1")
    inserted, updated = table.reader.wait_for_exactly_changes(2)
    assert (inserted.op, updated.op, updated.after) == ("c", "u", {"id": 1, "name": "bolt", "qty": 11})
    _, update_message = consume_exactly(stack.kafka_bootstrap, table.topic, 2)
    producer = Producer({"bootstrap.servers": stack.kafka_bootstrap})
    producer.produce(table.topic, key=update_message.key(), value=update_message.value())
    assert producer.flush(30) == 0
    reader = EventReader(stack.kafka_bootstrap, table.topic)
    try:
        with pytest.raises(AssertionError, match=f"3 change events on {table.topic}, expected exactly 2"):
            reader.wait_for_exactly_changes(2)
    finally:
        reader.close()


def test_insert_arrives_as_a_create_with_the_full_row(pg: psycopg.Connection, postgres_capture) -> None:
    table = postgres_capture(ITEMS)
    pg.execute(f"INSERT INTO {table.qualified} VALUES (1, 'bolt', 10), (2, 'nut', 20)")
    events = table.reader.wait_for_changes(2)
    assert [(e.op, e.before, e.after) for e in events] == [
        ("c", None, {"id": 1, "name": "bolt", "qty": 10}),
        ("c", None, {"id": 2, "name": "nut", "qty": 20}),
    ]
    assert events[0].key == {"id": 1} and events[0].source.table == table.name and events[0].source.schema == "inventory"


def test_update_carries_the_before_and_after_images(pg: psycopg.Connection, postgres_capture) -> None:
    table = postgres_capture(ITEMS)
    pg.execute(f"INSERT INTO {table.qualified} VALUES (1, 'bolt', 10)")
    pg.execute(f"UPDATE {table.qualified} SET qty = 11, name = 'bolt m6' WHERE id = 1")
    update = table.reader.wait_for_changes(2)[1]
    assert (update.op, update.before, update.after) == (
        "u",
        {"id": 1, "name": "bolt", "qty": 10},
        {"id": 1, "name": "bolt m6", "qty": 11},
    )


def test_delete_is_followed_by_a_tombstone(pg: psycopg.Connection, postgres_capture) -> None:
    table = postgres_capture(ITEMS)
    pg.execute(f"INSERT INTO {table.qualified} VALUES (5, 'washer', 1)")
    pg.execute(f"DELETE FROM {table.qualified} WHERE id = 5")
    events = table.reader.wait_until(lambda events: any(isinstance(e, Tombstone) for e in events), "a tombstone")
    assert [getattr(e, "op", "tombstone") for e in events] == ["c", "d", "tombstone"]
    assert events[1].before == {"id": 5, "name": "washer", "qty": 1} and events[1].after is None
    assert events[2].key == {"id": 5}


def test_primary_key_change_is_a_delete_of_the_old_key_and_a_create_of_the_new(
    pg: psycopg.Connection, postgres_capture
) -> None:
    table = postgres_capture(ITEMS)
    pg.execute(f"INSERT INTO {table.qualified} VALUES (1, 'gear', 3)")
    pg.execute(f"UPDATE {table.qualified} SET id = 100 WHERE id = 1")
    events = changes(table.reader.wait_for_changes(3))
    assert [(e.op, e.key) for e in events] == [("c", {"id": 1}), ("d", {"id": 1}), ("c", {"id": 100})]
    assert materialize(events, ["id"]) == {(100,): {"id": 100, "name": "gear", "qty": 3}}


def test_truncate_arrives_as_a_truncate_event(pg: psycopg.Connection, postgres_capture) -> None:
    table = postgres_capture(ITEMS)
    pg.execute(f"INSERT INTO {table.qualified} VALUES (1, 'a', 1), (2, 'b', 2)")
    pg.execute(f"TRUNCATE {table.qualified}")
    events = table.reader.wait_for_changes(3)
    assert [e.op for e in events] == ["c", "c", "t"]
    assert materialize(events, ["id"]) == {}


def test_a_transaction_of_many_rows_arrives_whole_and_in_commit_order(pg: psycopg.Connection, postgres_capture) -> None:
    table = postgres_capture(ITEMS)
    with pg.transaction():
        with pg.cursor() as cursor:
            cursor.executemany(f"INSERT INTO {table.qualified} VALUES (%s, %s, %s)", [(n, f"item {n}", n % 7) for n in range(1000)])
    events = table.reader.wait_for_changes(1000)
    assert [e.after["id"] for e in events] == list(range(1000))
    assert len({e.source.tx_id for e in events}) == 1
    source_rows = pg.execute(f"SELECT id, name, qty FROM {table.qualified}").fetchall()
    diff = compare_rows([dict(zip(("id", "name", "qty"), row)) for row in source_rows], rows_of(events, "c"), ["id"])
    assert diff.equal, diff.summary()


def test_changes_to_one_key_keep_their_commit_order(pg: psycopg.Connection, postgres_capture) -> None:
    table = postgres_capture(ITEMS)
    pg.execute(f"INSERT INTO {table.qualified} VALUES (1, 'counter', 0)")
    for value in range(1, 31):
        pg.execute(f"UPDATE {table.qualified} SET qty = %s WHERE id = 1", [value])
    events = table.reader.wait_for_changes(31)
    assert [e.after["qty"] for e in events] == list(range(31))
    lsns = [e.source.lsn for e in events]
    assert lsns == sorted(lsns) and len(set(lsns)) == len(lsns)


def test_column_types_round_trip_exactly(pg: psycopg.Connection, postgres_capture) -> None:
    table = postgres_capture(
        "id bigint PRIMARY KEY, price numeric(12,4), ratio double precision, active boolean, born date,"
        " seen timestamp, seen_tz timestamptz, opens time, token uuid, attrs jsonb, blob bytea, note text"
    )
    row = {
        "id": 9_000_000_000,
        "price": decimal.Decimal("12345678.9012"),
        "ratio": 0.125,
        "active": True,
        "born": dt.date(1999, 12, 31),
        "seen": dt.datetime(2026, 3, 4, 5, 6, 7, 891011),
        "seen_tz": dt.datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=dt.timezone.utc),
        "opens": dt.time(9, 30, 15, 250000),
        "token": uuid.UUID("6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e"),
        "attrs": {"color": "red", "sizes": [1, 2, 3]},
        "blob": b"\x00\xffbinary\x10",
        "note": "naïve café – ünïcode",
    }
    columns = ", ".join(row)
    placeholders = ", ".join(["%s"] * len(row))
    values = [psycopg.types.json.Jsonb(v) if k == "attrs" else v for k, v in row.items()]
    pg.execute(f"INSERT INTO {table.qualified} ({columns}) VALUES ({placeholders})", values)
    [event] = table.reader.wait_for_changes(1)
    assert event.after == row


def test_nulls_arrive_as_nulls(pg: psycopg.Connection, postgres_capture) -> None:
    table = postgres_capture("id integer PRIMARY KEY, price numeric(10,2), born date, note text")
    pg.execute(f"INSERT INTO {table.qualified} (id) VALUES (1)")
    [event] = table.reader.wait_for_changes(1)
    assert event.after == {"id": 1, "price": None, "born": None, "note": None}


def test_seeded_tables_were_snapshotted_row_for_row(stack: StackOutputs, pg: psycopg.Connection) -> None:
    """DQ-001/DQ-004: the connector's snapshot of inventory.products equals the source table."""
    from testkit.kafka import EventReader

    stack.require_connector_running(stack[out.POSTGRES_CONNECTOR])
    reader = EventReader(stack.kafka_bootstrap, f"{stack[out.POSTGRES_TOPIC_PREFIX]}.inventory.products")
    try:
        reader.wait_until(lambda events: sum(getattr(e, "op", "") == "r" for e in events) >= 5, "the snapshot of products")
        events = reader.drain()
    finally:
        reader.close()
    snapshot = [e for e in events if isinstance(e, ChangeEvent) and e.op == "r"]
    assert all(e.source.snapshot for e in snapshot)
    arrived = materialize(changes(events), ["id"])
    columns = ("id", "name", "description", "weight_kg", "price", "created_on")
    source = [dict(zip(columns, row)) for row in pg.execute(f"SELECT {', '.join(columns)} FROM inventory.products").fetchall()]
    diff = compare_rows(source, arrived.values(), ["id"], columns)
    assert diff.equal, diff.summary()
    # The reads themselves, as a list: materialize keeps one row per key, so it cannot see a row read twice.
    reads = compare_rows(source, rows_of(snapshot, "r"), ["id"], ["id"])
    assert reads.equal, f"each row should be read once by the snapshot: {reads.summary()}"


def test_commit_time_and_position_are_reported_per_event(pg: psycopg.Connection, postgres_capture) -> None:
    table = postgres_capture(ITEMS)
    before = pg.execute("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint").fetchone()[0]
    pg.execute(f"INSERT INTO {table.qualified} VALUES (1, 'x', 1)")
    pg.execute(f"INSERT INTO {table.qualified} VALUES (2, 'y', 2)")
    first, second = table.reader.wait_for_changes(2)
    assert before <= first.source.ts_ms <= second.source.ts_ms <= first.ts_ms + 60_000
    assert second.source.lsn > first.source.lsn and second.source.tx_id > first.source.tx_id
    assert first.source.connector == "postgresql" and not first.source.snapshot


def test_end_to_end_postgres_to_delta(pg: psycopg.Connection, delta_postgres_table, delta_lake: DeltaLake, spark: SparkSession) -> None:
    """Postgres → Debezium → Kafka → the stack's Delta sink: inserts, updates and deletes land as equal
    rows, and the table's Change Data Feed holds every change."""
    table = delta_postgres_table(ITEMS)
    pg.execute(f"INSERT INTO {table.qualified} SELECT n, 'item ' || n, n FROM generate_series(1, 100) AS n")
    wait_for_delta_parity(delta_lake, table, postgres_rows(pg, table.qualified))
    pg.execute(f"UPDATE {table.qualified} SET qty = qty + 100 WHERE id <= 10")
    pg.execute(f"DELETE FROM {table.qualified} WHERE id > 90")
    result = wait_for_delta_parity(delta_lake, table, postgres_rows(pg, table.qualified))
    assert len(result.rows) == 90 and result.diff.equal
    feed = change_feed(spark, table.identifier)
    kinds = [kind for _, kind, _ in feed]
    assert (kinds.count("insert"), kinds.count("update_postimage"), kinds.count("delete")) == (100, 10, 10)
    assert sorted(row["id"] for _, kind, row in feed if kind == "delete") == list(range(91, 101))
