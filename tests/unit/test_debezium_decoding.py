"""Decoding Debezium JSON change events into typed rows, and materialising them."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import uuid
from typing import Any

import pytest

from pipelines.consistency import compare_rows, materialize
from pipelines.debezium import ChangeEvent, DecodeError, Tombstone, decode

ROW_FIELDS = [
    {"type": "int32", "optional": False, "field": "id"},
    {"type": "string", "optional": True, "field": "name"},
    {"type": "bytes", "optional": True, "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "2"}, "field": "price"},
    {"type": "int32", "optional": True, "name": "io.debezium.time.Date", "field": "created_on"},
    {"type": "string", "optional": True, "name": "io.debezium.time.ZonedTimestamp", "field": "created_at"},
    {"type": "int64", "optional": True, "name": "io.debezium.time.MicroTimestamp", "field": "updated_at"},
    {"type": "int64", "optional": True, "name": "io.debezium.time.Timestamp", "field": "seen_at"},
    {"type": "struct", "optional": True, "name": "io.debezium.data.VariableScaleDecimal", "field": "ratio",
     "fields": [{"type": "int32", "field": "scale"}, {"type": "bytes", "field": "value"}]},
    {"type": "string", "optional": True, "name": "io.debezium.data.Uuid", "field": "token"},
    {"type": "string", "optional": True, "name": "io.debezium.data.Json", "field": "attributes"},
    {"type": "bytes", "optional": True, "field": "blob"},
    {"type": "int64", "optional": True, "name": "io.debezium.time.MicroTime", "field": "opens_at"},
]


def envelope(op: str, before: dict[str, Any] | None, after: dict[str, Any] | None, source: dict[str, Any]) -> bytes:
    row_schema = {"type": "struct", "optional": True, "fields": ROW_FIELDS}
    schema = {
        "type": "struct",
        "fields": [
            {**row_schema, "field": "before"},
            {**row_schema, "field": "after"},
            {"type": "struct", "field": "source", "fields": []},
            {"type": "string", "field": "op"},
            {"type": "int64", "field": "ts_ms"},
        ],
    }
    payload = {"before": before, "after": after, "source": source, "op": op, "ts_ms": 1_790_000_000_500}
    return json.dumps({"schema": schema, "payload": payload}).encode()


def key(row_id: int) -> bytes:
    return json.dumps({"schema": {"type": "struct", "fields": [{"type": "int32", "field": "id"}]}, "payload": {"id": row_id}}).encode()


def decimal_bytes(unscaled: int) -> str:
    return base64.b64encode(unscaled.to_bytes((unscaled.bit_length() + 8) // 8, "big", signed=True)).decode()


POSTGRES_SOURCE = {
    "connector": "postgresql", "db": "inventory", "schema": "inventory", "table": "products",
    "ts_ms": 1_790_000_000_000, "snapshot": "false", "lsn": 123456, "txId": 789,
}
MARIADB_SOURCE = {
    "connector": "mariadb", "db": "inventory", "table": "products", "ts_ms": 1_790_000_000_000,
    "snapshot": "false", "file": "binlog.000002", "pos": 4321, "row": 0,
}


def full_row() -> dict[str, Any]:
    return {
        "id": 7,
        "name": "scooter",
        "price": decimal_bytes(4999),
        "created_on": 20_469,
        "created_at": "2026-01-16T10:20:30.123456Z",
        "updated_at": 1_790_000_000_123_456,
        "seen_at": 1_790_000_000_123,
        "ratio": {"scale": 3, "value": decimal_bytes(-1250)},
        "token": "0d8c3b5e-7f36-4b8c-9a51-1f2f4c1e9b10",
        "attributes": '{"color": "red", "tags": ["a", "b"]}',
        "blob": base64.b64encode(b"\x00\x01binary").decode(),
        "opens_at": 34_200_000_000,
    }


def test_create_event_decodes_every_logical_type() -> None:
    event = decode(key(7), envelope("c", None, full_row(), POSTGRES_SOURCE), "pg.inventory.products", 0, 42)
    assert isinstance(event, ChangeEvent) and event.operation == "create" and event.before is None
    assert event.after == {
        "id": 7,
        "name": "scooter",
        "price": decimal.Decimal("49.99"),
        "created_on": dt.date(2026, 1, 16),
        "created_at": dt.datetime(2026, 1, 16, 10, 20, 30, 123456, tzinfo=dt.timezone.utc),
        "updated_at": dt.datetime(2026, 9, 21, 14, 13, 20, 123456),
        "seen_at": dt.datetime(2026, 9, 21, 14, 13, 20, 123000),
        "ratio": decimal.Decimal("-1.250"),
        "token": uuid.UUID("0d8c3b5e-7f36-4b8c-9a51-1f2f4c1e9b10"),
        "attributes": {"color": "red", "tags": ["a", "b"]},
        "blob": b"\x00\x01binary",
        "opens_at": dt.time(9, 30),
    }
    assert (event.key, event.topic, event.partition, event.offset) == ({"id": 7}, "pg.inventory.products", 0, 42)


def test_postgres_source_position_carries_lsn_and_commit_time() -> None:
    event = decode(key(7), envelope("u", full_row(), full_row(), POSTGRES_SOURCE))
    assert event.source.lsn == 123456 and event.source.tx_id == 789
    assert event.source.ts_ms == 1_790_000_000_000 and event.ts_ms == 1_790_000_000_500
    assert event.source.snapshot is False and event.source.table == "products"


def test_binlog_source_position_carries_file_and_offset() -> None:
    event = decode(key(7), envelope("c", None, full_row(), MARIADB_SOURCE))
    assert (event.source.connector, event.source.binlog_file, event.source.binlog_pos, event.source.row) == (
        "mariadb", "binlog.000002", 4321, 0,
    )


def test_snapshot_reads_are_marked_as_snapshot() -> None:
    event = decode(key(7), envelope("r", None, full_row(), {**POSTGRES_SOURCE, "snapshot": "last"}))
    assert event.operation == "read" and event.source.snapshot is True


def test_delete_keeps_the_before_image_and_a_tombstone_follows() -> None:
    deleted = decode(key(7), envelope("d", full_row(), None, POSTGRES_SOURCE))
    assert deleted.op == "d" and deleted.after is None and deleted.before["price"] == decimal.Decimal("49.99")
    tombstone = decode(key(7), None, "pg.inventory.products", 0, 43)
    assert tombstone == Tombstone({"id": 7}, "pg.inventory.products", 0, 43)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"not json", "is not JSON"),
        (b'{"id": 1}', "no schema/payload envelope"),
        (b'{"schema": {}, "payload": {"id": 1}}', "not a change event"),
    ],
)
def test_records_that_are_not_change_events_are_decode_errors(value: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode(key(1), value, "some.topic", 2, 9)


def test_materialize_applies_creates_updates_pk_changes_deletes_and_truncates() -> None:
    def row(row_id: int, name: str) -> dict[str, Any]:
        return {**full_row(), "id": row_id, "name": name}

    events = [
        decode(key(1), envelope("r", None, row(1, "a"), POSTGRES_SOURCE)),
        decode(key(2), envelope("c", None, row(2, "b"), POSTGRES_SOURCE)),
        decode(key(2), envelope("u", row(2, "b"), row(2, "B"), POSTGRES_SOURCE)),
        decode(key(1), envelope("u", row(1, "a"), row(10, "a"), POSTGRES_SOURCE)),
        decode(key(3), envelope("c", None, row(3, "c"), POSTGRES_SOURCE)),
        decode(key(3), envelope("d", row(3, "c"), None, POSTGRES_SOURCE)),
        decode(key(3), None),
    ]
    state = materialize(events, ["id"])
    assert {row_key: value["name"] for row_key, value in state.items()} == {(2,): "B", (10,): "a"}
    truncated = materialize([*events, decode(None, envelope("t", None, None, POSTGRES_SOURCE))], ["id"])
    assert truncated == {}


def test_compare_rows_reports_missing_unexpected_and_changed_rows() -> None:
    source = [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}, {"id": 3, "v": "c"}]
    downstream = [{"id": 1, "v": "a"}, {"id": 2, "v": "B"}, {"id": 4, "v": "d"}]
    diff = compare_rows(source, downstream, ["id"])
    assert not diff.equal
    assert diff.missing == {(3,): {"id": 3, "v": "c"}}
    assert diff.unexpected == {(4,): {"id": 4, "v": "d"}}
    assert diff.changed == {(2,): ({"id": 2, "v": "b"}, {"id": 2, "v": "B"})}
    assert compare_rows(source, list(reversed(source)), ["id"]).equal
